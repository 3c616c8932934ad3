"""`aftercare db upgrade` must be safe while old daemons still run: a migration may add tables,
columns (nullable or with a server default) and indexes, never drop or rename what the previous
release reads. Removing something takes two releases: stop using it, then drop it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from aftercare.db import migrations_dir

FORBIDDEN = {"drop_table", "drop_column", "alter_column", "rename_table", "drop_constraint"}
VERSIONS = sorted((migrations_dir() / "versions").glob("*.py"))


def _calls_in_upgrade(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    upgrade = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade")
    return {
        node.func.attr
        for node in ast.walk(upgrade)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }


def test_there_are_migrations_to_check() -> None:
    assert len(VERSIONS) >= 2


@pytest.mark.parametrize("path", VERSIONS, ids=lambda p: p.name)
def test_every_upgrade_only_adds(path: Path) -> None:
    assert not _calls_in_upgrade(path) & FORBIDDEN


@pytest.mark.parametrize("path", VERSIONS, ids=lambda p: p.name)
def test_added_columns_are_nullable_or_defaulted(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_column":
            column = node.args[-1]
            keywords = {k.arg: k.value for k in getattr(column, "keywords", [])}
            nullable = keywords.get("nullable")
            assert "server_default" in keywords or not (
                isinstance(nullable, ast.Constant) and nullable.value is False
            ), f"{path.name}: a NOT NULL column without a default breaks old daemons' inserts"
