"""Every benchmark, one after the other, each in its own process: the command behind every figure
in bench/README.md.

Run: .venv/bin/python -m bench.run_all [--quick] [--no-readme]

``--quick`` and ``--no-readme`` go to each benchmark (a quick run leaves the README alone). Each
benchmark rewrites its own section, with the machine it ran on. The first one to fail stops the
run; the ones after it do not run, so no section is left half from this run and half from another
without saying so.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# In the order of bench/README.md. bench_soak runs only where it exists.
BENCHMARKS = (
    "bench_import",
    "bench_dispatch",
    "bench_daemons",
    "bench_callbacks",
    "bench_peer",
    "bench_latency",
    "bench_hl7",
    "bench_soak",
    "bench_console",
)
OPTIONAL = {"bench_soak"}


def present() -> list[str]:
    """The benchmarks to run; a missing required one is an error, not a silent skip."""
    names = []
    for name in BENCHMARKS:
        if (ROOT / "bench" / f"{name}.py").exists():
            names.append(name)
        elif name in OPTIONAL:
            _say(f"bench/{name}.py does not exist here: skipped")
        else:
            raise SystemExit(f"bench/{name}.py is missing")
    return names


def run_one(name: str, flags: list[str]) -> float:
    """Seconds the benchmark took; exits at once if it failed."""
    command = [sys.executable, "-m", f"bench.{name}", *flags]
    started = time.perf_counter()
    # Output goes straight through: long benchmarks print their progress as they go.
    done = subprocess.run(command, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"\nbench.{name} failed (exit code {done.returncode}) after {_minutes(seconds)}; "
            "the benchmarks after it did not run. Fix it, then run it alone: "
            f"{' '.join(['python', '-m', f'bench.{name}', *flags])}"
        )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's smoke run")
    parser.add_argument("--no-readme", action="store_true", help="print the tables only")
    args = parser.parse_args()
    flags = [flag for flag, on in (("--quick", args.quick), ("--no-readme", args.no_readme)) if on]
    names = present()
    times: list[tuple[str, float]] = []
    started = time.perf_counter()
    for number, name in enumerate(names, 1):
        _say(f"\n=== {number}/{len(names)} bench.{name} {' '.join(flags)}".rstrip())
        times.append((name, run_one(name, flags)))
        _say(f"=== bench.{name}: {_minutes(times[-1][1])}")
    _say("\n" + "\n".join(f"{name:<16} {_minutes(seconds):>8}" for name, seconds in times))
    _say(f"{'total':<16} {_minutes(time.perf_counter() - started):>8}")


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
