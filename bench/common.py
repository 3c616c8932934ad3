"""What every benchmark needs: the machine it ran on, and its results table in bench/README.md."""

from __future__ import annotations

import os
import platform
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown CPU"


def machine() -> str:
    """ "2026-11-23 20:41 UTC on AMD EPYC, 2 cores; Python 3.11.7" """
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {cpu_model()}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}"
    )


def write_section(name: str, section: str, path: Path = README) -> None:
    """Replace what stands between ``<!-- NAME-results:start -->`` and ``...:end -->``; the rest
    of the file is left as it is."""
    start, end = f"<!-- {name}-results:start -->", f"<!-- {name}-results:end -->"
    text = path.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise SystemExit(f"{path} has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{section}\n{end}{tail}", encoding="utf-8")


def migrated_template(path: Path) -> Path:
    """A migrated, empty SQLite file to copy for each run (copying beats migrating)."""
    from aftercare import db

    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    return path


def copy_of(template: Path, path: Path) -> Path:
    shutil.copyfile(template, path)
    return path
