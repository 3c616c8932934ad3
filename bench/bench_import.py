"""Import benchmark: CSV import speed against the raw SQLite floor, and memory at 100,000 patients.

Run: .venv/bin/python -m bench.bench_import [--quick] [--no-readme] [--profile]

Each measurement runs in a fresh subprocess so that timings and peak memory do not mix; import
and floor runs alternate, so both see the same machine. The results table in bench/README.md is
rewritten between its markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aftercare import db
from aftercare.config import Settings
from aftercare.importer import import_csv
from aftercare.schedules.load import Catalog
from bench.common import copy_of, cpu_model, migrated_template, write_section
from bench.generate import NOW, write_file

ROOT = Path(__file__).resolve().parents[1]
# The tables an import writes, parents first (the floor writes them in this order).
TABLES = ("patient", "enrollment", "message", "event")

TARGET_SECONDS = 3.0
TARGET_ROWS_PER_SECOND = 50_000
TARGET_FLOOR_RATIO = 5.0
TARGET_PEAK_MB = 200.0


# --- measurements, each run in its own process ------------------------------------------------


def measure_import(csv_path: str, db_path: str) -> dict[str, Any]:
    """Time ``import_csv`` (the code behind ``aftercare import``) on a migrated database."""
    engine = db.make_engine(f"sqlite:///{db_path}")
    factory = db.session_factory(engine)
    catalog, settings = Catalog.default(), Settings()
    baseline = _peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    report = import_csv(Path(csv_path), factory, catalog, settings, NOW, "bench")
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rows": report.rows,
        "enrolled": report.enrolled,
        "existing": report.existing,
        "messages": report.messages,
        "bad": len(report.bad),
        "baseline_rss_mb": baseline,
        "peak_rss_mb": _peak_rss_mb(),
    }


def measure_floor(source_db: str, target_db: str) -> dict[str, Any]:
    """The same rows as an import wrote, written again with the bare sqlite3 module: one
    executemany per table, one transaction, the app's pragmas. Reading them is not timed."""
    source = sqlite3.connect(source_db)
    data = {}
    for table in TABLES:
        cursor = source.execute(f"SELECT * FROM {table} ORDER BY id")
        data[table] = ([d[0] for d in cursor.description], cursor.fetchall())
    source.close()
    target = sqlite3.connect(target_db, isolation_level=None)
    target.execute("PRAGMA synchronous=NORMAL")  # as aftercare.db sets it (WAL is in the file)
    target.execute("PRAGMA foreign_keys=ON")
    started = time.perf_counter()
    target.execute("BEGIN IMMEDIATE")
    for table, (columns, rows) in data.items():
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        target.executemany(sql, rows)
    target.execute("COMMIT")
    seconds = time.perf_counter() - started
    target.close()
    return {"seconds": seconds, "rows": sum(len(rows) for _, rows in data.values())}


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


MEASUREMENTS: dict[str, Callable[..., dict[str, Any]]] = {
    "import": measure_import,
    "floor": measure_floor,
}


def _in_subprocess(name: str, *args: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.bench_import", "--child", name, *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{name} {' '.join(args)} failed:\n{done.stderr}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Results:
    patients: int
    big_patients: int
    repeats: int
    imports: list[dict[str, Any]]
    floors: list[dict[str, Any]]
    reimports: list[dict[str, Any]]
    big: dict[str, Any]


def run(patients: int, big_patients: int, repeats: int) -> Results:
    with tempfile.TemporaryDirectory(prefix="aftercare-bench-") as folder:
        work = Path(folder)
        template = migrated_template(work / "template.db")
        csv_path = write_file(work / f"patients-{patients}.csv", patients)
        imports, floors, reimports = [], [], []
        for attempt in range(repeats):
            target = copy_of(template, work / f"import-{attempt}.db")
            imports.append(_checked(_in_subprocess("import", str(csv_path), str(target)), patients))
            floor_db = copy_of(template, work / f"floor-{attempt}.db")
            floors.append(_in_subprocess("floor", str(target), str(floor_db)))
            again = _in_subprocess("import", str(csv_path), str(target))
            reimports.append(_checked(again, patients, again=True))
            seconds = ", ".join(f"{r[-1]['seconds']:.2f} s" for r in (imports, floors, reimports))
            _say(f"run {attempt + 1}/{repeats}: import, floor, import again: {seconds}")
        big_csv = write_file(work / f"patients-{big_patients}.csv", big_patients)
        big_db = copy_of(template, work / "big.db")
        big = _checked(_in_subprocess("import", str(big_csv), str(big_db)), big_patients)
        _say(f"{big_patients} patients: {big['seconds']:.1f} s, {big['peak_rss_mb']:.0f} MB peak")
    return Results(patients, big_patients, repeats, imports, floors, reimports, big)


def _checked(result: dict[str, Any], patients: int, again: bool = False) -> dict[str, Any]:
    """The result, if every patient was enrolled (or, the second time, found enrolled)."""
    expected = {
        "bad": 0,
        "enrolled": 0 if again else patients,
        "existing": patients if again else 0,
    }
    if any(result[key] != value for key, value in expected.items()):
        raise SystemExit(f"the import did not do what was expected ({expected}): {result}")
    return result


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- reporting -------------------------------------------------------------------------------


def table(results: Results) -> str:
    imports, floors, big = results.imports, results.floors, results.big
    seconds = _spread([r["seconds"] for r in imports])
    floor = _spread([r["seconds"] for r in floors])
    messages = imports[0]["messages"]
    rate = (messages / seconds[0], messages / seconds[1])
    ratio = (seconds[0] / floor[0], seconds[1] / floor[1])
    n, big_n = f"{results.patients:,}", f"{results.big_patients:,}"
    other_rows = floors[0]["rows"] - messages
    rows = [
        (
            f"import {n} patients ({messages:,} messages): wall",
            *_both(seconds, "{:.2f} s"),
            f"≤ {TARGET_SECONDS:g} s",
            _met(seconds[0] <= TARGET_SECONDS),
        ),
        (
            "message rows per second",
            *_both(rate, "{:,.0f}"),
            f"≥ {TARGET_ROWS_PER_SECOND:,}",
            _met(rate[0] >= TARGET_ROWS_PER_SECOND),
        ),
        (
            f"raw floor: the same {messages:,} + {other_rows:,} other rows, sqlite3 executemany",
            *_both(floor, "{:.2f} s"),
            "",
            "",
        ),
        (
            "import ÷ raw floor",
            *_both(ratio, "{:.1f}×"),
            f"≤ {TARGET_FLOOR_RATIO:g}×",
            _met(ratio[0] <= TARGET_FLOOR_RATIO),
        ),
        (
            "import CPU time",
            *_both(_spread([r["cpu_seconds"] for r in imports]), "{:.2f} s"),
            "",
            "",
        ),
        (
            f"import the same {n} again (all already enrolled)",
            *_both(_spread([r["seconds"] for r in results.reimports]), "{:.2f} s"),
            "",
            "",
        ),
        (f"import {n}: peak RSS", f"{imports[0]['peak_rss_mb']:.0f} MB", "", "", ""),
        (
            f"import {big_n} patients ({big['messages']:,} messages): peak RSS",
            f"{big['peak_rss_mb']:.0f} MB",
            "",
            f"< {TARGET_PEAK_MB:g} MB",
            _met(big["peak_rss_mb"] < TARGET_PEAK_MB),
        ),
        ("… of which before the import started", f"{big['baseline_rss_mb']:.0f} MB", "", "", ""),
        (f"import {big_n}: wall", f"{big['seconds']:.1f} s", "", "", ""),
    ]
    header = ["| measurement | best | median | target | |", "| --- | ---: | ---: | --- | --- |"]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([_machine(results), "", *header, *lines])


def _spread(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def _both(pair: tuple[float, float], form: str) -> tuple[str, str]:
    return form.format(pair[0]), form.format(pair[1])


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _machine(results: Results) -> str:
    import sqlalchemy

    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {cpu_model()}, "
        f"{os.cpu_count()} cores; Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, SQLAlchemy {sqlalchemy.__version__}. "
        f"Best and median of {results.repeats} runs, each in a fresh process."
    )


def write_readme(section: str) -> None:
    write_section("import", section)


def profile(patients: int) -> None:
    """One import in this process under cProfile; the 30 most expensive functions by own time."""
    import cProfile
    import pstats

    with tempfile.TemporaryDirectory(prefix="aftercare-bench-") as folder:
        work = Path(folder)
        csv_path = write_file(work / "patients.csv", patients)
        target = migrated_template(work / "profile.db")
        profiler = cProfile.Profile()
        profiler.runcall(measure_import, str(csv_path), str(target))
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 patients, 2 runs")
    parser.add_argument("--no-readme", action="store_true", help="print the table only")
    parser.add_argument("--profile", action="store_true", help="profile one 10,000 import")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, *rest = args.child
        print(json.dumps(MEASUREMENTS[name](*rest)))
        return
    if args.profile:
        profile(10_000)
        return
    sizes = (1_000, 10_000, 2) if args.quick else (10_000, 100_000, 5)
    section = table(run(*sizes))
    print(section)
    if not args.no_readme and not args.quick:
        write_readme(section)


if __name__ == "__main__":
    main()
