"""HL7 v2 intake: ADT^A03 discharges enrolled and acknowledged over MLLP by `aftercare hl7 listen`.

Run: .venv-test/bin/python -m bench.bench_hl7 [--quick] [--no-readme]

The real command runs in its own process on a fresh SQLite database; the load comes from this
process over real TCP connections, each sending a message and waiting for its ACK (MLLP is
one message at a time per connection), as an interface engine does.

* Throughput: 2,000 discharges (distinct patients) from 4 connections at once, as fast as the
  ACKs come back; every ACK must be AA and every patient enrolled once.
* Latency: 20 messages a second, paced, for 30 seconds on one connection: ACK time p50/p99.

Targets (issue 16): at least 200 discharges a second; p99 ACK under 50 ms at 20 a second.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select

from aftercare.models import Enrollment
from bench.common import machine, migrated_template, write_section
from tests import adt
from tests.mllp_client import MllpClient, msa

ROOT = Path(__file__).resolve().parent.parent


def discharge(n: int, run: str, at: datetime) -> str:
    stamp = at.strftime("%Y%m%d%H%M%z")
    return adt.message(
        control_id=f"{run}-{n}",
        pid={3: f"B{run}{n:06d}^^^GENERAL^MR", 13: f"^PRN^CP^^1^202^555{n % 10000:04d}"},
        pv1={19: f"V{n}", 45: stamp},
    )


def start_listener(db_path: Path, log: Path) -> tuple[subprocess.Popen[bytes], tuple[str, int]]:
    env = os.environ | {
        "AFTERCARE_DATABASE_URL": f"sqlite:///{db_path}",
        "AFTERCARE_FACILITY_TIMEZONE": "America/Chicago",
        "AFTERCARE_LOG_FORMAT": "json",
    }
    command = [sys.executable, "-m", "aftercare", "hl7", "listen", "--port", "0"]
    stderr = log.open("wb")
    process = subprocess.Popen(command, env=env, stderr=stderr, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"listening for HL7 v2 \(MLLP\) on ([\d.]+):(\d+)", log.read_text())
        if match:
            return process, (match.group(1), int(match.group(2)))
        if process.poll() is not None:
            raise SystemExit(f"the listener exited: {log.read_text()[-500:]}")
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the listener did not start in 30 s")


def throughput(address: tuple[str, int], total: int, connections: int) -> float:
    at = datetime.now(UTC) - timedelta(hours=1)
    per = total // connections
    failures: list[str] = []

    def one(c: int) -> None:
        with MllpClient(address, timeout=30) as client:
            for i in range(per):
                code = msa(client.send(discharge(c * per + i, "T", at)))[0]
                if code != "AA":
                    failures.append(code)

    threads = [threading.Thread(target=one, args=(c,)) for c in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} messages were not accepted: {failures[:3]}")
    return per * connections / elapsed


def latency(address: tuple[str, int], rate: float, seconds: float) -> list[float]:
    at = datetime.now(UTC) - timedelta(hours=1)
    count = int(rate * seconds)
    times: list[float] = []
    with MllpClient(address, timeout=30) as client:
        start = time.perf_counter()
        for i in range(count):
            # Paced sending: a load generator keeps to its schedule (this is the benchmark's
            # own clock, not a wait in the code under test).
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            code = msa(client.send(discharge(i, "L", at)))[0]
            times.append((time.perf_counter() - sent) * 1000)
            if code != "AA":
                raise SystemExit(f"message {i} answered {code}")
    return sorted(times)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc): what a message costs,
    whatever else the machine is doing."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 messages, 5 s paced; print")
    parser.add_argument("--no-readme", action="store_true", help="print; leave bench/README.md")
    args = parser.parse_args()
    total, seconds = (200, 5.0) if args.quick else (2000, 30.0)
    with tempfile.TemporaryDirectory() as folder:
        db_path = migrated_template(Path(folder) / "hl7.db")
        process, address = start_listener(db_path, Path(folder) / "listener.log")
        try:
            before = cpu_seconds(process.pid)
            rate = throughput(address, total, connections=4)
            cpu_ms = (cpu_seconds(process.pid) - before) / total * 1000
            times = latency(address, 20.0, seconds)
        finally:
            process.terminate()
            process.wait(timeout=30)
        engine = create_engine(f"sqlite:///{db_path}")
        with engine.connect() as connection:
            enrolled = connection.scalar(select(func.count()).select_from(Enrollment))
        engine.dispose()
    expected = total + len(times)
    if enrolled != expected:
        raise SystemExit(f"{enrolled} enrollments for {expected} discharges")
    p50, p99 = percentile(times, 0.50), percentile(times, 0.99)
    load = os.getloadavg()[0]
    table = "\n".join(
        [
            f"Measured {machine()}; load average {load:.1f} at the end (other work on the"
            " machine slows the wall-clock figures, not the CPU time).",
            "",
            "| measurement | result | target |",
            "| --- | --- | --- |",
            f"| ADT^A03 enrolled and ACKed, 4 connections, {total} patients | "
            f"{rate:.0f} messages/s | >= 200/s |",
            f"| CPU time of the listener per discharge (parse, enroll, ACK) | {cpu_ms:.1f} ms "
            f"(at most {1000 / cpu_ms:.0f}/s on one core) | – |",
            f"| ACK time at 20 messages/s for {seconds:.0f} s (p50 / p99 / max) | "
            f"{p50:.1f} / {p99:.1f} / {times[-1]:.1f} ms | p99 < 50 ms |",
        ]
    )
    print(table)
    if not (args.quick or args.no_readme):
        write_section("hl7", table)


if __name__ == "__main__":
    main()
