"""Status callbacks benchmark: signed Twilio callbacks on loopback against ``aftercare serve``.

Run: .venv/bin/python -m bench.bench_callbacks [--quick] [--no-readme] [--profile]

The real command (``python -m aftercare serve``, waitress) runs in its own process on a SQLite
file whose messages are already ``sent`` with provider ids. A load generator in another process
(threads, one keep-alive connection each, every request signed beforehand) sends a fixed list of
callbacks as fast as the server answers: sent then delivered for most messages, undelivered or
failed with error codes for some, the final callback twice for some. A message's callbacks stand
side by side in the list, so they reach the server on different threads at the same moment.
Afterwards every message's status (and error code) must equal its final callback's, with one
event per change: no lost and no doubled updates.

Two reference rows say where the ceiling is: the same load against waitress serving a no-op WSGI
app (what the HTTP server and the load generator cost), and the aftercare WSGI app called
directly in one thread, no HTTP (what the application itself costs).

The full run rewrites the ``callbacks-results`` section of bench/README.md; ``--quick`` (1,000
callbacks, one round) only prints. ``--profile`` samples the server with py-spy (on PATH, or
``PY_SPY=/path/to/py-spy``) during one run and prints where its threads spend the GIL.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select, update

from aftercare import db
from aftercare.app import App
from aftercare.clock import ManualClock
from aftercare.config import Settings
from aftercare.enrollment import EnrollmentRequest, parse_request
from aftercare.models import Event, Message
from aftercare.store.enrollments import enroll_many
from bench.common import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
PUBLIC_URL = "https://aftercare.example.test"
STATUS_PATH = "/webhooks/twilio/status"
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "be4c4" * 6 + "be4c"
FROM_NUMBER = "+15005550006"
TARGET_PER_SECOND = 500
CLIENT_THREADS = 8
SERVER_THREADS = (8, 4, 1)  # 8 is `aftercare serve`'s default
SMS_PER_PATIENT = 9  # SMS rows a kyphoplasty or vertebroplasty enrollment plans
# Twilio's final word on a text: (share of messages, MessageStatus, ErrorCode).
OUTCOMES = (
    (0.80, "delivered", None),
    (0.10, "undelivered", "30003"),  # handset unreachable
    (0.05, "undelivered", "30008"),  # unknown error
    (0.05, "failed", "30006"),  # a landline: the number is suppressed too
)
DUPLICATE_SHARE = 0.20  # messages whose final callback arrives twice
_RANK = {"sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}


@dataclass(frozen=True)
class Callback:
    sid: str
    status: str
    error_code: str | None


# --- the data ----------------------------------------------------------------------------------


def sid_of(message_id: int) -> str:
    return f"SM{message_id:032x}"


def prepare_database(path: Path, messages: int) -> None:
    """A migrated SQLite file whose first ``messages`` SMS rows are ``sent`` with provider ids
    (the rest cancelled)."""
    url = f"sqlite:///{path}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    app = App(Settings(database_url=url, quiet_hours=None), ManualClock(NOW))
    patients = -(-messages // SMS_PER_PATIENT)
    for start in range(0, patients, 1000):
        batch = [_request(app, i) for i in range(start, min(start + 1000, patients))]
        with app.sessions.begin() as session:
            enroll_many(session, batch, app.settings, NOW, "bench")
    sent_at = NOW + timedelta(minutes=1)
    with app.sessions.begin() as session:
        ids = session.scalars(select(Message.id).order_by(Message.id).limit(messages)).all()
        session.execute(update(Message).where(Message.id > ids[-1]).values(status="cancelled"))
        rows = [
            {"id": i, "status": "sent", "provider_id": sid_of(i), "sent_at": sent_at} for i in ids
        ]
        session.execute(update(Message), rows)
    app.close()


def _request(app: App, i: int) -> EnrollmentRequest:
    fields = {
        "first_name": f"P{i}",
        "phone": f"+1202555{i % 10_000:04d}",
        "timezone": "America/Chicago",
        "procedure": ("kyphoplasty", "vertebroplasty")[i % 2],
        "discharged_at": (NOW - timedelta(hours=3)).isoformat(),
        "channels": "sms",
        "external_id": f"MRN{i}",
    }
    return parse_request(fields, app.catalog, NOW)


def plan_callbacks(requests: int, rng: random.Random) -> list[Callback]:
    """About ``requests`` callbacks: each message's in Twilio's order, the messages shuffled."""
    per_message = sum(share * (1 if s == "failed" else 2) for share, s, _ in OUTCOMES)
    order = list(range(1, int(requests / (per_message + DUPLICATE_SHARE)) + 1))
    rng.shuffle(order)
    plan: list[Callback] = []
    for message_id in order:
        sid = sid_of(message_id)
        status, code = _outcome(rng.random())
        sequence = [Callback(sid, "sent", None), Callback(sid, status, code)]
        if status == "failed":
            sequence = sequence[1:]  # a landline fails without ever being sent
        if rng.random() < DUPLICATE_SHARE:
            sequence.append(sequence[-1])
        plan += sequence
    return plan


def _outcome(draw: float) -> tuple[str, str | None]:
    for share, status, code in OUTCOMES:
        if draw < share:
            return status, code
        draw -= share
    return OUTCOMES[-1][1], OUTCOMES[-1][2]


def signed(plan: list[Callback]) -> list[dict[str, str]]:
    """Each callback as Twilio sends it: the form body and its X-Twilio-Signature."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    requests = []
    for callback in plan:
        form = {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "From": FROM_NUMBER,
            "MessageSid": callback.sid,
            "MessageStatus": callback.status,
            "SmsSid": callback.sid,
            "SmsStatus": callback.status,
            "To": "+12025550100",
        }
        if callback.error_code:
            form["ErrorCode"] = callback.error_code
        signature = validator.compute_signature(PUBLIC_URL + STATUS_PATH, form)
        requests.append({"body": urlencode(form), "signature": signature})
    return requests


def check_database(path: Path, plan: list[Callback]) -> dict[str, int]:
    """Messages whose status or error code is not their final callback's ("lost updates"), and
    how far the provider's events are from one per change."""
    final = {callback.sid: callback for callback in plan}
    app = App(Settings(database_url=f"sqlite:///{path}"), ManualClock(NOW))
    with app.sessions() as session:
        rows = session.execute(
            select(Message.provider_id, Message.status, Message.error_code).where(
                Message.provider_id.is_not(None)
            )
        ).all()
        kinds = select(Event.kind, func.count()).where(
            Event.actor == "provider", Event.message_id.is_not(None)
        )
        events = Counter(dict(session.execute(kinds.group_by(Event.kind)).all()))
    app.close()
    lost = sum(
        1
        for sid, status, code in rows
        if sid is None or (status, code) != (final[sid].status, final[sid].error_code)
    )
    changes = Counter(c.status for c in final.values() if _RANK[c.status] > _RANK["sent"])
    wrong_events = sum(((events - changes) + (changes - events)).values())
    return {"lost_updates": lost, "wrong_events": wrong_events}


# --- servers -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (Linux)."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serve(path: Path, threads: int, noop: bool = False) -> Iterator[Server]:
    """``aftercare serve`` (or, with ``noop``, waitress serving a no-op app) on a free loopback
    port, with the environment it needs and its log in a file beside the database."""
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AFTERCARE_DATABASE_URL": f"sqlite:///{path}",
        "AFTERCARE_PUBLIC_URL": PUBLIC_URL,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }
    program = ["bench.bench_callbacks", "--noop-server"] if noop else ["aftercare", "serve"]
    command = [sys.executable, "-m", *program, "--port", str(port), "--threads", str(threads)]
    log = path.with_suffix(".log")
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stderr=sink)
    server = Server(process, port, log)
    try:
        _wait_until_listening(server)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_listening(server: Server, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{server.log.read_text()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            connection.request("GET", "/healthz")
            connection.getresponse().read()  # 503 (no dispatcher ticks) is an answer all the same
            connection.close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start listening")


def noop_server(port: int, threads: int) -> None:
    """Waitress with the same settings as ``aftercare serve``, answering 200 to everything."""
    import waitress

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return [b""]

    waitress.serve(app, host="127.0.0.1", port=port, threads=threads, ident="noop")


# --- the load generator (its own process) ------------------------------------------------------


def generate_load(spec_path: str) -> dict[str, Any]:
    """Send every request of the spec file; thread k sends requests k, k + T, k + 2T, ..."""
    spec = json.loads(Path(spec_path).read_text())
    requests, threads, port = spec["requests"], spec["threads"], spec["port"]
    latencies: list[list[float]] = [[] for _ in range(threads)]
    answers: list[Counter[str]] = [Counter() for _ in range(threads)]
    ready = threading.Barrier(threads + 1)

    def work(k: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.connect()
        ready.wait()
        for request in requests[k::threads]:
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": request["signature"],
            }
            started = time.perf_counter()
            try:
                connection.request("POST", STATUS_PATH, request["body"], headers)
                response = connection.getresponse()
                response.read()
                answers[k][str(response.status)] += 1
            except (OSError, http.client.HTTPException) as exc:
                answers[k][type(exc).__name__] += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            latencies[k].append(time.perf_counter() - started)
        connection.close()

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    every = sorted(x for chunk in latencies for x in chunk)
    return {
        "requests": len(every),
        "seconds": elapsed,
        "answers": dict(sum(answers, Counter())),
        "p50_ms": statistics.median(every) * 1000,
        "p99_ms": every[max(int(len(every) * 0.99) - 1, 0)] * 1000,
        "max_ms": every[-1] * 1000,
    }


def _fire(server: Server, plan: list[Callback], folder: Path) -> dict[str, Any]:
    """Run the load generator against ``server``; its figures plus the server's CPU time."""
    spec = folder / "load.json"
    payload = {"port": server.port, "threads": CLIENT_THREADS, "requests": signed(plan)}
    spec.write_text(json.dumps(payload))
    cpu = server.cpu_seconds()
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_callbacks", "--load", str(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    load: dict[str, Any] = json.loads(done.stdout)
    cpu = server.cpu_seconds() - cpu
    errors = sum(n for answer, n in load["answers"].items() if answer != "200")
    return load | {
        "per_second": load["requests"] / load["seconds"],
        "errors": errors,
        "server_cpu_ms": cpu / load["requests"] * 1000,
    }


# --- measurements ------------------------------------------------------------------------------


def against_aftercare(requests: int, threads: int, seed: int = 1) -> dict[str, Any]:
    """A fresh database and ``aftercare serve``, the callbacks, then the database checked."""
    plan = plan_callbacks(requests, random.Random(seed))
    with tempfile.TemporaryDirectory(prefix="aftercare-bench-") as folder:
        path = Path(folder) / "bench.db"
        prepare_database(path, len({c.sid for c in plan}))
        with serve(path, threads) as server:
            result = _fire(server, plan, Path(folder))
        return result | check_database(path, plan) | {"threads": threads}


def against_noop(requests: int, threads: int) -> dict[str, Any]:
    plan = plan_callbacks(requests, random.Random(1))
    with (
        tempfile.TemporaryDirectory(prefix="aftercare-bench-") as folder,
        serve(Path(folder) / "unused.db", threads, noop=True) as server,
    ):
        return _fire(server, plan, Path(folder)) | {"threads": threads}


def app_only(requests: int) -> dict[str, Any]:
    """The aftercare WSGI app called directly in this thread: CPU per callback, no HTTP."""
    import logging

    from werkzeug.test import EnvironBuilder

    from aftercare.clock import SystemClock
    from aftercare.web import create_app

    logging.getLogger("aftercare").setLevel(logging.WARNING)
    plan = plan_callbacks(requests, random.Random(1))
    with tempfile.TemporaryDirectory(prefix="aftercare-bench-") as folder:
        path = Path(folder) / "bench.db"
        prepare_database(path, len({c.sid for c in plan}))
        settings = Settings(
            database_url=f"sqlite:///{path}", public_url=PUBLIC_URL, twilio_auth_token=AUTH_TOKEN
        )
        app = App(settings, SystemClock())
        web = create_app(app)
        environs = [
            EnvironBuilder(
                path=STATUS_PATH,
                method="POST",
                data=request["body"],
                content_type="application/x-www-form-urlencoded",
                headers=[("X-Twilio-Signature", request["signature"])],
            ).get_environ()
            for request in signed(plan)
        ]
        answers: Counter[str] = Counter()
        started = time.process_time()
        for environ in environs:
            b"".join(web(environ, lambda status, headers, *_: answers.update([status[:3]])))
        cpu = time.process_time() - started
        app.close()
        checks = check_database(path, plan)
    errors = sum(n for answer, n in answers.items() if answer != "200")
    per_request = cpu / len(environs) * 1000
    return {"requests": len(environs), "cpu_ms": per_request, "errors": errors} | checks


MEASUREMENTS: dict[str, Callable[..., dict[str, Any]]] = {
    "aftercare": against_aftercare,
    "noop": against_noop,
    "app": app_only,
}


def _in_subprocess(name: str, *args: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_callbacks", "--child", name, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(requests: int, rounds: int) -> dict[str, Any]:
    """Every configuration once per round, rounds one after the other (so a busy minute on a
    shared machine hits all of them alike), each in fresh processes."""
    runs: dict[int, list[dict[str, Any]]] = {threads: [] for threads in SERVER_THREADS}
    for _ in range(rounds):
        for threads in SERVER_THREADS:
            runs[threads].append(_in_subprocess("aftercare", requests, threads))
    return {
        "requests": requests,
        "rounds": rounds,
        "aftercare": runs,
        "noop": _in_subprocess("noop", requests, SERVER_THREADS[0]),
        "app": _in_subprocess("app", min(requests, 5_000)),
    }


# --- the README table --------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    rounds = results["rounds"]
    requests = results["aftercare"][SERVER_THREADS[0]][0]["requests"]
    lines = [
        f"Measured {machine()}, SQLite {_sqlite_version()}. {requests:,} callbacks per run from "
        f"{CLIENT_THREADS} keep-alive connections in another process; "
        + (f"best and median of {rounds} runs" if rounds > 1 else "one run")
        + " per row, each on a fresh database and server process. Latencies and CPU are the "
        "median run's.",
        "",
        "| server | requests/s best | median | p50 | p99 | max | errors | lost updates "
        f"| server CPU per request | ≥ {TARGET_PER_SECOND}/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for threads, runs in results["aftercare"].items():
        ordered = sorted(runs, key=lambda r: r["per_second"])
        median = ordered[len(ordered) // 2]
        lost = sum(r["lost_updates"] for r in runs)
        wrong = sum(r["wrong_events"] for r in runs)
        lines.append(
            f"| `aftercare serve --threads {threads}` | {ordered[-1]['per_second']:,.0f} "
            f"| {median['per_second']:,.0f} | {_latencies(median)} "
            f"| {sum(r['errors'] for r in runs)} "
            f"| {lost}{'' if wrong == 0 else f' (**{wrong} events wrong**)'} "
            f"| {median['server_cpu_ms']:.2f} ms "
            f"| {'met' if median['per_second'] >= TARGET_PER_SECOND else '**missed**'} |"
        )
    noop, app = results["noop"], results["app"]
    lines += [
        f"| reference: waitress, no-op app, {noop['threads']} threads "
        f"| {noop['per_second']:,.0f} |  | {_latencies(noop)} | {noop['errors']} |  "
        f"| {noop['server_cpu_ms']:.2f} ms |  |",
        f"| reference: the aftercare WSGI app called directly, one thread, no HTTP "
        f"| {1000 / app['cpu_ms']:,.0f} |  |  |  |  | {app['errors']} | {app['lost_updates']} "
        f"| {app['cpu_ms']:.2f} ms |  |",
    ]
    return "\n".join(lines)


def _latencies(run: dict[str, Any]) -> str:
    return f"{run['p50_ms']:.1f} ms | {run['p99_ms']:.1f} ms | {run['max_ms']:,.0f} ms"


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


# --- profiling ---------------------------------------------------------------------------------


def profile(requests: int, threads: int) -> None:
    """One run with py-spy sampling the server's threads while they hold the GIL."""
    spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: pip install py-spy, or set PY_SPY to its path")
    plan = plan_callbacks(requests, random.Random(1))
    with tempfile.TemporaryDirectory(prefix="aftercare-bench-") as folder:
        path = Path(folder) / "bench.db"
        prepare_database(path, len({c.sid for c in plan}))
        samples = Path(folder) / "samples.txt"
        with serve(path, threads) as server:
            sampler = subprocess.Popen(
                [spy, "record", "--pid", str(server.process.pid), "--format", "raw", "--gil",
                 "--threads", "--nonblocking", "--rate", "200", "--output", str(samples)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)  # py-spy attaches
            result = _fire(server, plan, Path(folder))
            sampler.send_signal(2)  # SIGINT: py-spy writes its file and exits
            sampler.wait(timeout=60)
        print(json.dumps({k: result[k] for k in ("per_second", "p50_ms", "p99_ms", "errors")}))
        print_profile(samples.read_text())


# Where a sample's stack is, first match wins: (label, a frame that must be on the stack).
_PARTS = (
    (
        "receipts.apply_status: ORM select, changes, suppression",
        "apply_status (aftercare/store/receipts",
    ),
    ("logging the callback", "Logger.info ("),
    ("signature check and form parsing (Signatures.form)", "Signatures.form ("),
    ("transaction: BEGIN, ORM flush (UPDATE, INSERT event), COMMIT", "transaction (aftercare/db"),
    ("rest of the app: Flask routing, Request, Response", "Flask.wsgi_app ("),
    ("waitress worker: environ, writing the answer", "): waitress-"),
    ("waitress I/O loop: accepting, reading, parsing", ""),
)


def print_profile(raw: str, top: int = 25) -> None:
    """Shares of the GIL samples by part of the request, then by function (own time)."""
    parts: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        parts[next(label for label, frame in _PARTS if frame in stack)] += count
        leaf = stack.rsplit(";", 1)[-1]
        own[_frame_name(leaf)] += count
    total = sum(parts.values())
    print(f"{total} samples with the GIL held\n\nby part:")
    for label, _ in _PARTS:
        print(f"{parts[label] / total:6.1%}  {label}")
    print("\nby function (own time):")
    for name, count in own.most_common(top):
        print(f"{count / total:6.1%}  {name}")


def _frame_name(frame: str) -> str:
    """``Session.flush (sqlalchemy/orm/session.py:4594)`` -> ``Session.flush (session.py)``"""
    function, _, where = frame.partition(" (")
    return f"{function} ({where.split(':')[0].rsplit('/', 1)[-1]})" if where else function


# --- the command -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 callbacks, one round, print")
    parser.add_argument("--no-readme", action="store_true", help="print the table only")
    parser.add_argument("--profile", action="store_true", help="sample the server with py-spy")
    parser.add_argument("--load", help=argparse.SUPPRESS)  # the load generator's process
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)  # one measurement
    parser.add_argument("--noop-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(generate_load(args.load)))
    elif args.noop_server:
        noop_server(args.port, args.threads)
    elif args.child:
        name, *numbers = args.child
        print(json.dumps(MEASUREMENTS[name](*map(int, numbers))))
    elif args.profile:
        profile(10_000, SERVER_THREADS[0])
    else:
        requests, rounds = (1_000, 1) if args.quick else (10_000, 3)
        section = table(run(requests, rounds))
        print(section)
        if not (args.quick or args.no_readme):
            write_section("callbacks", section)


if __name__ == "__main__":
    main()
