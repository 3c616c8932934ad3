"""The architecture holds itself: rules read from the source with ``ast``, each shown to fail.

- Only ``aftercare/store/`` (and ``db.py``, ``models.py``) issues SQL: no other module imports
  SQLAlchemy's statement builders, calls ``execute``/``scalar``/``scalars``/``query``, or
  reads or writes through the ORM (``session.get``, ``session.add``, ...).
- The pure modules (planner, retry, replies, render, gsm, schedules/) import no SQLAlchemy and
  nothing that holds a database, and never read a clock: ``now`` is always passed in.
- No import cycle inside ``aftercare/``, counting imports inside functions too.
- No module reaches into another's private names (``from aftercare.x import _y``, ``x._y``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aftercare"

# Where SQL may be written: the persistence boundary, the engine, the table definitions.
SQL_ALLOWED = ("aftercare.store", "aftercare.db", "aftercare.models")
PURE = (
    "aftercare.planner",
    "aftercare.retry",
    "aftercare.replies",
    "aftercare.render",
    "aftercare.gsm",
    "aftercare.schedules",
)
# SQLAlchemy names that build statements; importing one is writing SQL.
STATEMENT_BUILDERS = {
    "select", "insert", "update", "delete", "text", "func", "exists", "and_", "or_", "not_",
    "bindparam", "literal", "case", "union", "union_all", "tuple_", "aliased", "lambda_stmt",
    "column", "table", "null", "true", "false", "cast", "distinct", "desc", "asc",
}  # fmt: skip
# Methods that run a statement on a Session, Connection or Engine.
RUNS_SQL = {"execute", "scalar", "scalars", "query", "exec_driver_sql", "executemany"}
# The ORM's reads and writes, on a variable named ``session`` (dicts and sets have get and add).
SESSION_SQL = {"get", "get_one", "add", "add_all", "merge", "delete", "flush", "refresh"}
# Holding these means holding a database.
DATABASE_MODULES = ("sqlalchemy", "aftercare.models", "aftercare.db", "aftercare.store")
CLOCK_READS = {
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
    ("time", "time"), ("time", "time_ns"), ("time", "monotonic"), ("time", "perf_counter"),
}  # fmt: skip


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def modules() -> dict[str, str]:
    """Every module of the package by dotted name, with its source."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path.read_text(encoding="utf-8")
    return found


def imported(module: str, source: str, known: Mapping[str, str] | None = None) -> Iterator[str]:
    """Every module ``module`` imports, anywhere in its source (functions and TYPE_CHECKING
    blocks included). ``from package import name`` yields ``package.name`` when that is a
    module of ``known``, else ``package``."""
    is_package = known is not None and any(k.startswith(module + ".") for k in known)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if known is not None and submodule in known else base


def sql_problems(module: str, source: str) -> list[str]:
    """Where ``module`` builds or runs SQL."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            problems += [
                f"{module}:{node.lineno} imports sqlalchemy's {alias.name}"
                for alias in node.names
                if alias.name in STATEMENT_BUILDERS
            ]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in {"sqlalchemy", "sa"}
            and node.attr in STATEMENT_BUILDERS
        ):
            problems.append(f"{module}:{node.lineno} uses sqlalchemy.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, receiver = node.func.attr, node.func.value
            on_session = isinstance(receiver, ast.Name) and receiver.id == "session"
            if method in RUNS_SQL or (on_session and method in SESSION_SQL):
                problems.append(f"{module}:{node.lineno} calls .{method}()")
    return problems


def purity_problems(module: str, source: str) -> list[str]:
    """Where ``module`` touches a database or reads the clock."""
    problems = [
        f"{module} imports {name}"
        for name in sorted(set(imported(module, source)))
        if within(name, DATABASE_MODULES)
    ]
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and (node.func.value.id, node.func.attr) in CLOCK_READS
        ):
            problems.append(f"{module}:{node.lineno} reads the clock ({ast.unparse(node.func)})")
        if isinstance(node, ast.ImportFrom) and node.module in {"time", "datetime"}:
            problems += [
                f"{module}:{node.lineno} imports the clock {node.module}.{alias.name}"
                for alias in node.names
                if (node.module, alias.name) in CLOCK_READS
            ]
    return problems


def import_cycles(sources: Mapping[str, str]) -> list[list[str]]:
    """The strongly connected groups (more than one module, or one importing itself) of the
    import graph between ``sources``."""
    graph = {
        name: sorted({i for i in imported(name, src, sources) if i in sources})
        for name, src in sources.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1 or node in graph[node]:
                cycles.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return cycles


def private_reaches(module: str, source: str) -> list[str]:
    """Where ``module`` uses another aftercare module's private (underscored) names."""
    tree = ast.parse(source)
    aliases = set()  # names this module binds to aftercare modules
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aftercare"):
            for alias in node.names:
                if alias.name.startswith("_"):
                    problems.append(f"{module}:{node.lineno} imports {node.module}.{alias.name}")
                aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            aliases |= {a.asname for a in node.names if a.asname and a.name.startswith("aftercare")}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            problems.append(f"{module}:{node.lineno} uses {node.value.id}.{node.attr}")
    return problems


# --- the rules, on the real package -------------------------------------------------------------


def test_only_the_store_issues_sql() -> None:
    problems = [
        problem
        for name, source in modules().items()
        if not within(name, SQL_ALLOWED)
        for problem in sql_problems(name, source)
    ]
    assert problems == []


def test_the_pure_modules_hold_no_database_and_read_no_clock() -> None:
    pure = {name: src for name, src in modules().items() if within(name, PURE)}
    assert set(PURE) <= set(pure) | {"aftercare.schedules"}, "a pure module was renamed"
    problems = [problem for name, src in pure.items() for problem in purity_problems(name, src)]
    assert problems == []


def test_no_import_cycle_exists_inside_the_package() -> None:
    assert import_cycles(modules()) == []


def test_no_module_uses_another_modules_private_names() -> None:
    problems = [p for name, src in modules().items() for p in private_reaches(name, src)]
    assert problems == []


# --- each rule can fail ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "from sqlalchemy import select\n",
        "import sqlalchemy as sa\nsa.update(Message)\n",
        "def f(session):\n    return session.scalars(query).all()\n",
        "def f(connection):\n    connection.exec_driver_sql('DELETE FROM message')\n",
        "def f(session):\n    return session.get(Patient, 7)\n",
    ],
)
def test_the_sql_rule_catches_a_statement_outside_the_store(source: str) -> None:
    assert sql_problems("aftercare.web.ops", source)


def test_the_sql_rule_lets_a_module_use_sessions_it_does_not_query() -> None:
    source = "def f(session, form):\n    session.commit()\n    return form.get('Body')\n"
    assert sql_problems("aftercare.dispatch", source) == []


@pytest.mark.parametrize(
    "source",
    [
        "from sqlalchemy.orm import Session\n",
        "from aftercare.models import Message\n",
        "def f():\n    from aftercare.store import claims\n",
        "from datetime import datetime\ndef f():\n    return datetime.now()\n",
        "import time\ndef f():\n    return time.monotonic()\n",
        "from time import time\n",
    ],
)
def test_the_purity_rule_catches_a_database_or_a_clock(source: str) -> None:
    assert purity_problems("aftercare.planner", source)


def test_the_purity_rule_allows_times_passed_in() -> None:
    source = "from datetime import datetime, timedelta\ndef f(now: datetime):\n    return now\n"
    assert purity_problems("aftercare.planner", source) == []


def test_the_cycle_rule_catches_a_cycle_through_a_function_level_import() -> None:
    sources = {
        "aftercare.a": "from aftercare import b\n",
        "aftercare.b": "def f():\n    from aftercare.c import g\n",
        "aftercare.c": "import aftercare.a\n",
        "aftercare.d": "from aftercare.a import x\n",
    }
    assert import_cycles(sources) == [["aftercare.a", "aftercare.b", "aftercare.c"]]


def test_the_cycle_rule_resolves_relative_imports_and_packages() -> None:
    sources = {
        "aftercare.web": "from .app import create_app\n",
        "aftercare.web.app": "from aftercare.web import ops\n",
        "aftercare.web.ops": "from . import app\n",
    }
    assert import_cycles(sources) == [["aftercare.web.app", "aftercare.web.ops"]]


@pytest.mark.parametrize(
    "source",
    [
        "from aftercare.cli.group import _actor\n",
        "from aftercare.store import claims\nclaims._lock(session, query)\n",
        "import aftercare.store.claims as claims\nclaims._REASONS\n",
    ],
)
def test_the_privacy_rule_catches_a_reach_into_another_module(source: str) -> None:
    assert private_reaches("aftercare.cli.patients", source)


def test_the_privacy_rule_lets_a_module_use_its_own_private_names() -> None:
    source = "from aftercare.store import claims\n_CACHE = {}\nclaims.claim_due(_CACHE)\n"
    assert private_reaches("aftercare.dispatch", source) == []
