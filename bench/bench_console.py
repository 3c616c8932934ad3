"""Console benchmark: the worklist and the roster with 10,000 patients and 1,000 open items on
SQLite, and enrolling from the form.

Run: .venv-test/bin/python -m bench.bench_console [--quick] [--no-readme]

The database is built once: 10,000 patients imported with ``importer.import_csv`` (the code behind
``aftercare import``), then 1,000 open worklist items (300 questions, 100 urgent replies, 400
failed texts with 21211, 200 opt-outs) beside 5,000 replies already handled. Each page is then
requested through the console's WSGI app (the Flask app ``aftercare serve`` runs, signed in as a
nurse), the whole request timed: routing, session, queries, templates. The results table in
bench/README.md is rewritten between its markers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from aftercare import db
from aftercare.app import App
from aftercare.clock import ManualClock
from aftercare.config import Settings
from aftercare.importer import import_csv
from aftercare.models import Enrollment, Message, Patient, Reply, Suppression
from aftercare.statuses import MessageStatus, ReplyKind
from bench.common import machine, write_section
from bench.console_client import csrf, signed_in_client
from bench.generate import NOW, write_file

TARGET_PAGE_MS = 150.0
TARGET_ENROLL_MS = 100.0
PATIENTS, QUESTIONS, URGENT, FAILURES, OPT_OUTS, HANDLED = 10_000, 300, 100, 400, 200, 5_000


def build(folder: Path, patients: int) -> App:
    """A migrated SQLite database with ``patients`` enrolled and the open items beside them."""
    url = f"sqlite:///{folder / 'console.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    clock = ManualClock(NOW + timedelta(hours=6))
    app = App(Settings(database_url=url), clock, actor="bench")
    csv_path = write_file(folder / "patients.csv", patients)
    report = import_csv(csv_path, app.sessions, app.catalog, app.settings, NOW, "bench")
    assert not report.bad, report.bad[:3]
    scale = patients / PATIENTS
    with app.sessions() as session, session.begin():
        rows = session.execute(
            select(Enrollment.id, Patient.id, Patient.phone).join(Patient).order_by(Enrollment.id)
        ).all()
        first_sms = dict(
            session.execute(
                select(Message.enrollment_id, Message.id).where(
                    Message.channel == "sms", Message.step == "welcome-home"
                )
            ).all()
        )
        at = NOW + timedelta(hours=3)
        counts = [int(n * scale) for n in (QUESTIONS, URGENT, FAILURES, OPT_OUTS, HANDLED)]
        questions, urgent, failures, opt_outs, handled = counts
        for i, (enrollment_id, patient_id, phone) in enumerate(rows[: questions + urgent]):
            session.add(_reply(i, enrollment_id, patient_id, phone, first_sms, at, i >= questions))
        start = questions + urgent
        for enrollment_id, _, _ in rows[start : start + failures]:
            message = session.get(Message, first_sms[enrollment_id])
            assert message is not None
            message.status, message.error_code, message.updated_at = (
                MessageStatus.FAILED,
                "21211",
                at,
            )
        start += failures
        for _, _, phone in rows[start : start + opt_outs]:
            session.add(Suppression(channel="sms", address=phone, reason="patient replied STOP",
                                    created_at=at))  # fmt: skip
        start += opt_outs
        for i, (enrollment_id, patient_id, phone) in enumerate(rows[start : start + handled]):
            reply = _reply(10**6 + i, enrollment_id, patient_id, phone, first_sms, at, False)
            reply.handled_at, reply.handled_by = at, "bench"
            session.add(reply)
    return app


def _reply(
    n: int,
    enrollment_id: int,
    patient_id: int,
    phone: str,
    first_sms: dict[int, int],
    at: Any,
    urgent: bool,
) -> Reply:
    return Reply(
        provider_id=f"SMbench{n:010d}",
        received_at=at + timedelta(seconds=n % 3600),
        from_number=phone,
        patient_id=patient_id,
        enrollment_id=enrollment_id,
        in_reply_to=first_sms.get(enrollment_id),
        body="I have a fever" if urgent else "Can I shower tomorrow?",
        kind=ReplyKind.QUESTION,
        urgent=urgent,
        urgent_reason="mentions a warning sign: fever" if urgent else None,
    )


Samples = tuple[list[float], list[float]]  # wall and CPU milliseconds per call


def timed(runs: int, request: Callable[[int], Any]) -> Samples:
    """Wall and CPU milliseconds per call, after two warm-up calls. The CPU time is this
    process's: on a machine shared with other work it is what the request itself cost."""
    for i in range(2):
        request(-1 - i)
    wall, cpu = [], []
    for i in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        request(i)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    return wall, cpu


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[-1]


def measure(client: FlaskClient, runs: int) -> dict[str, Samples]:
    def get(path: str) -> Callable[[int], Any]:
        def call(_: int) -> None:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)

        return call

    token = csrf(client.get("/enroll").get_data(as_text=True))

    def search(term: str) -> Callable[[int], Any]:
        def call(_: int) -> None:  # a search is a POST: names and digits stay out of URLs
            response = client.post("/patients", data={"q": term, "csrf_token": token})
            assert response.status_code == 200, response.status_code

        return call

    def enroll(i: int) -> None:
        form = {
            "csrf_token": token,
            "first_name": "Bench",
            "phone": f"+1303555{(i + 100) % 10_000:04d}",
            "email": "",
            "timezone": "America/Denver",
            "procedure": "kyphoplasty",
            "discharged_at": "2026-11-24T10:30",
            "language": "en",
            "external_id": f"BENCH-{i + 100}",
            "action": "enroll",
        }
        response = client.post("/enroll", data=form)
        assert response.status_code == 302, response.status_code
        assert response.headers["Location"].startswith("/patients/"), "not enrolled"

    return {
        "worklist": timed(runs, get("/")),
        "roster": timed(runs, get("/patients")),
        "roster, needs attention": timed(runs, get("/patients?attention=1")),
        "roster, search by last 4 digits": timed(runs, search("0143")),
        "enroll from the form": timed(runs, enroll),
    }


def table(results: dict[str, Samples], patients: int, open_items: int) -> str:
    load = os.getloadavg()[0]
    lines = [
        f"Measured {machine()}; load average {load:.1f} at the end; {patients:,} patients, "
        f"{open_items:,} open items, SQLite.",
        "",
        "| request | median ms | p95 ms | target p95 | p95 CPU ms | runs |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, (wall, cpu) in results.items():
        target = TARGET_ENROLL_MS if name.startswith("enroll") else TARGET_PAGE_MS
        verdict = "met" if p95(wall) < target else "**missed**"
        lines.append(
            f"| {name} | {statistics.median(wall):.1f} | {p95(wall):.1f} | "
            f"< {target:.0f} ({verdict}) | {p95(cpu):.1f} | {len(wall)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 patients, 10 runs each")
    parser.add_argument("--no-readme", action="store_true", help="print, do not write README")
    args = parser.parse_args()
    patients, runs = (1_000, 10) if args.quick else (PATIENTS, 40)
    with tempfile.TemporaryDirectory(prefix="aftercare-bench-console-") as folder:
        started = time.perf_counter()
        app = build(Path(folder), patients)
        print(f"built {patients:,} patients in {time.perf_counter() - started:.1f} s")
        client = signed_in_client(app)
        results = measure(client, runs)
        app.close()
    open_items = int((QUESTIONS + URGENT + FAILURES + OPT_OUTS) * patients / PATIENTS)
    section = table(results, patients, open_items)
    print(section)
    if not (args.quick or args.no_readme):
        write_section("console", section)


if __name__ == "__main__":
    main()
