"""Nothing a patient said ends up in a log: when the database refuses a write, the exception that
is logged names its type and the statement, never the values (a reply's text, a phone number, an
email address), in text and in JSON, whatever logger wrote it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy.exc import IntegrityError
from twilio.request_validator import RequestValidator

from aftercare import db, logs
from aftercare.app import App
from aftercare.config import Settings, load_settings
from aftercare.errors import SettingsError
from aftercare.models import Suppression
from aftercare.tokens import make_token
from tests.factories import enroll
from tests.processes import (
    aftercare,
    answers,
    free_port,
    make_read_only,
    migrated_postgres,
    wait_for,
)

NAME, PHONE, EMAIL = "Zebulon", "+12025550188", "bo.secret@example.org"
REPLY = "I have a fever of 39 and my incision is bleeding"
SECRETS = (NAME, PHONE, PHONE[2:], "%2B1202555", EMAIL, "fever of 39", "incision is bleeding")
TOKEN, PUBLIC_URL, SECRET_KEY = (
    "log-auth-token-0123456789abcdef",
    "https://care.example.org",
    ("log-secret-key-0123456789"),
)


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """logs.configure replaces the root handlers; put the test runner's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_unique_violation_is_logged_with_its_type_and_statement_but_not_the_address(
    db_url, log_format, capsys, logging_restored
):
    logs.configure(log_format)
    engine = db.make_engine(db_url)
    sessions = db.session_factory(engine)
    now = datetime.now(UTC)
    try:
        for _ in range(2):
            with db.transaction(sessions) as session:
                session.add(Suppression(channel="email", address=EMAIL, reason="x", created_at=now))
    except IntegrityError:
        logging.getLogger("aftercare.web").exception("unhandled error on /unsubscribe")
    finally:
        engine.dispose()
    err = capsys.readouterr().err
    assert "IntegrityError" in err and "INSERT INTO suppression " in err
    assert EMAIL not in err
    if log_format == "json":
        (entry,) = [json.loads(line) for line in err.splitlines()]
        assert entry["exception"] == "sqlalchemy.exc.IntegrityError"
        assert entry["statement"].startswith("INSERT INTO suppression ")
        assert "Traceback" in entry["traceback"]


@pytest.mark.postgres
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_read_only_database_under_the_web_server_logs_no_reply_number_or_address(
    tmp_path: Path, log_format: str
):
    with migrated_postgres() as url:
        app = App(Settings(database_url=url, secret_key=SECRET_KEY))
        enrollment_id = enroll(app, first_name=NAME, phone=PHONE, email=EMAIL)
        app.close()
        make_read_only(url)
        port = free_port()
        env = {
            "AFTERCARE_DATABASE_URL": url,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "AFTERCARE_PUBLIC_URL": PUBLIC_URL,
            "AFTERCARE_SECRET_KEY": SECRET_KEY,
            "AFTERCARE_LOG_FORMAT": log_format,
            "AFTERCARE_LOG_LEVEL": "debug",
        }
        with aftercare(
            tmp_path / "serve.log", "serve", "--port", str(port), env=env, cwd=tmp_path
        ) as server:
            base = f"http://127.0.0.1:{port}"
            wait_for(lambda: answers(base + "/healthz"))
            inbound = _signed(
                base,
                "/webhooks/twilio/inbound",
                {"MessageSid": "SM" + "1" * 32, "From": PHONE, "Body": REPLY},
            )
            status = _signed(
                base,
                "/webhooks/twilio/status",
                {
                    "MessageSid": "SM" + "2" * 32,
                    "MessageStatus": "undelivered",
                    "ErrorCode": "30005",
                    "To": PHONE,
                },
            )
            unsubscribe = requests.post(
                f"{base}/unsubscribe/{make_token(SECRET_KEY, enrollment_id, 'email')}", timeout=10
            )
            server.stop()
        log = server.output()
    assert [inbound.status_code, status.status_code, unsubscribe.status_code] == [500] * 3
    assert log.count("ReadOnlySqlTransaction") >= 3, log  # the failures were logged, with types
    for secret in SECRETS:
        assert secret not in log, secret


def _signed(base: str, path: str, params: dict[str, str]) -> requests.Response:
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC_URL + path, params)
    return requests.post(
        base + path,
        data=urlencode(params),
        timeout=10,
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )


def test_the_log_level_is_a_setting_and_a_bad_one_is_named():
    assert load_settings({"AFTERCARE_LOG_LEVEL": "WARNING"}).log_level == "warning"
    assert load_settings({}).log_level == "info"
    with pytest.raises(SettingsError, match="AFTERCARE_LOG_LEVEL: expected one of debug"):
        load_settings({"AFTERCARE_LOG_LEVEL": "loud"})


def test_at_warning_level_the_web_server_logs_no_info_lines(tmp_path: Path, sqlite_template):
    (tmp_path / "a.db").write_bytes(sqlite_template.read_bytes())
    env = {"AFTERCARE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    for level in ("info", "warning"):
        port = free_port()
        with aftercare(
            tmp_path / f"{level}.log",
            "serve",
            "--port",
            str(port),
            env=env | {"AFTERCARE_LOG_LEVEL": level},
            cwd=tmp_path,
        ) as server:
            wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"))  # noqa: B023
            server.stop()
    assert " INFO waitress: Serving on" in (tmp_path / "info.log").read_text()
    assert " INFO " not in (tmp_path / "warning.log").read_text()
