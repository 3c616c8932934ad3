"""``aftercare doctor`` against the real twilio SDK talking to the fake Twilio API, a real SMTP
server (aiosmtpd) on loopback, and real databases (SQLite and PostgreSQL where it matters)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import aftercare.cli.doctor  # noqa: F401  (registers the command)
from aftercare.app import App
from aftercare.config import Settings
from tests.conftest import CliRun

SMTP_USER, SMTP_PASSWORD = "clinic", "smtp-pass-7f3a9"
SECRET_KEY = "unsubscribe-secret-0123456789abcdef"


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated SQLite database, for checks where the backend does not matter."""
    path = tmp_path / "doctor.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def relay(make_smtp_server):
    """An SMTP relay that wants STARTTLS and a login, as a real one would."""
    return make_smtp_server(username=SMTP_USER, password=SMTP_PASSWORD, tls="starttls")


@pytest.fixture
def ready(fake_twilio, relay):
    """Function: settings with everything configured for the fakes, on the given database."""

    def make(database_url: str, **overrides) -> Settings:
        base = Settings(
            database_url=database_url,
            smtp_url=relay.url,
            email_from="care@clinic.example.org",
            staff_email="nurses@clinic.example.org",
            public_url="https://care.clinic.example.org",
            secret_key=SECRET_KEY,
            oncall_phone="+13125550100",
        )
        return fake_twilio.settings(base, **overrides)

    return make


def doctor(settings: Settings, *args: str):
    app = App(settings, actor="staff:test")
    try:
        return CliRun(app)("doctor", *args)
    finally:
        app.close()


def lines(result) -> dict[str, tuple[str, str]]:
    """check -> (status, detail), from the table (the last line is the tally)."""
    rows = [line.split(maxsplit=2) for line in result.output.splitlines()[:-1]]
    return {check: (status, detail) for status, check, detail in rows}


def test_a_ready_deployment_passes_every_check(db_url, ready, fake_twilio, relay):
    result = doctor(ready(db_url))
    assert result.exit_code == 0, result.output
    checks = lines(result)
    assert list(checks) == [
        "settings", "database", "timelines", "twilio", "smtp", "public_url", "secret_key",
        "urgent",
    ]  # fmt: skip
    assert {status for status, _ in checks.values()} == {"ok"}, result.output
    assert "schema at head" in checks["database"][1]
    assert "credentials accepted" in checks["twilio"][1]
    assert "STARTTLS, login accepted" in checks["smtp"][1]
    assert result.output.splitlines()[-1] == "8 ok, 0 warning(s), 0 failed"
    assert fake_twilio.requests["account"] == 1
    assert fake_twilio.messages == [] and relay.messages == []  # looked, sent nothing


def test_no_secret_is_ever_printed(sqlite_url, ready, fake_twilio):
    for settings in (ready(sqlite_url), ready(sqlite_url, twilio_auth_token="wrong-token-1234")):
        output = doctor(settings).output + doctor(settings, "--json").output
        for secret in (fake_twilio.auth_token, "wrong-token-1234", SMTP_PASSWORD, SECRET_KEY):
            assert secret not in output


def test_a_wrong_twilio_token_fails(sqlite_url, ready):
    result = doctor(ready(sqlite_url, twilio_auth_token="wrong-token-1234"))
    assert result.exit_code == 1
    status, detail = lines(result)["twilio"]
    assert status == "FAIL" and detail.startswith("credentials refused")
    assert result.output.splitlines()[-1] == "7 ok, 0 warning(s), 1 failed"


def test_an_account_twilio_does_not_know_fails(sqlite_url, ready):
    result = doctor(ready(sqlite_url, twilio_account_sid="AC" + "0" * 32))
    assert result.exit_code == 1
    assert lines(result)["twilio"][0] == "FAIL"


def test_an_unreachable_twilio_api_fails(sqlite_url, ready, fake_twilio):
    fake_twilio.stop()
    result = doctor(ready(sqlite_url))
    assert result.exit_code == 1
    status, detail = lines(result)["twilio"]
    assert status == "FAIL" and "connection to Twilio failed" in detail
    assert fake_twilio.url in detail


def test_a_stopped_smtp_server_fails(sqlite_url, ready, relay):
    relay.stop()
    result = doctor(ready(sqlite_url))
    assert result.exit_code == 1
    status, detail = lines(result)["smtp"]
    assert status == "FAIL" and "cannot reach the SMTP relay" in detail
    assert f"127.0.0.1:{relay.port}" in detail


def test_a_refused_smtp_login_fails(sqlite_url, ready, relay):
    wrong = relay.url.replace(f":{SMTP_PASSWORD}@", ":not-the-password@")
    result = doctor(ready(sqlite_url, smtp_url=wrong))
    assert result.exit_code == 1
    status, detail = lines(result)["smtp"]
    assert status == "FAIL" and "refused the login" in detail


def test_a_plain_relay_without_login_is_fine(sqlite_url, ready, smtp_server):
    result = doctor(ready(sqlite_url, smtp_url=smtp_server.url))
    assert result.exit_code == 0, result.output
    assert lines(result)["smtp"] == (
        "ok",
        f"127.0.0.1:{smtp_server.port}: connected, no login configured (no mail sent)",
    )
    assert smtp_server.messages == []


def test_an_unmigrated_database_fails(empty_db_url, ready):
    result = doctor(ready(empty_db_url))
    assert result.exit_code == 1
    status, detail = lines(result)["database"]
    assert status == "FAIL" and detail.endswith("run 'aftercare db upgrade'")
    if empty_db_url.startswith("sqlite"):
        assert not Path(empty_db_url.removeprefix("sqlite:///")).exists()  # it made none


def test_an_unreachable_database_fails(ready):
    result = doctor(ready("postgresql://aftercare:db-password-9@127.0.0.1:1/aftercare"))
    assert result.exit_code == 1
    status, detail = lines(result)["database"]
    assert status == "FAIL" and "cannot connect" in detail
    assert "db-password-9" not in result.output


def test_channels_not_configured_at_all_only_warn(sqlite_url):
    result = doctor(Settings(database_url=sqlite_url))
    checks = lines(result)
    assert [name for name, (status, _) in checks.items() if status == "FAIL"] == ["urgent"]
    assert checks["twilio"] == ("warn", "not configured: sms messages wait as pending")
    assert checks["smtp"] == ("warn", "not configured: email messages wait as pending")
    assert checks["public_url"][0] == "warn"


def test_a_half_configured_channel_fails(sqlite_url, ready):
    result = doctor(ready(sqlite_url, twilio_from_number=None, email_from=None))
    assert result.exit_code == 1
    checks = lines(result)
    assert checks["twilio"] == (
        "FAIL",
        "incomplete: TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID not set",
    )
    assert checks["smtp"] == ("FAIL", "incomplete: AFTERCARE_EMAIL_FROM not set")


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("https://care.clinic.example.org", "ok"),
        ("http://care.clinic.example.org", "FAIL"),
        ("http://localhost:8080", "ok"),
        ("http://127.0.0.1:8080", "ok"),
        (None, "warn"),
    ],
)
def test_the_public_url_must_be_https_unless_local(sqlite_url, ready, url, status):
    result = doctor(ready(sqlite_url, public_url=url))
    assert lines(result)["public_url"][0] == status
    assert result.exit_code == (1 if status == "FAIL" else 0)


def test_email_without_a_secret_key_warns(sqlite_url, ready):
    result = doctor(ready(sqlite_url, secret_key=None))
    assert result.exit_code == 0
    status, detail = lines(result)["secret_key"]
    assert status == "warn" and "unsubscribe" in detail


def test_a_broken_timeline_file_fails(sqlite_url, ready, tmp_path):
    folder = tmp_path / "timelines"
    folder.mkdir()
    (folder / "hip.yaml").write_text("name: hip\nsteps: [\n", encoding="utf-8")
    result = doctor(ready(sqlite_url, schedules_dir=folder))
    assert result.exit_code == 1
    status, detail = lines(result)["timelines"]
    assert status == "FAIL" and "hip.yaml" in detail


def test_settings_lists_what_is_set_by_name_only(sqlite_url, ready):
    detail = lines(doctor(ready(sqlite_url)))["settings"][1]
    assert "set: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN" in detail
    assert "not set: AFTERCARE_SCHEDULES_DIR" in detail


def test_a_staff_email_without_an_email_channel_warns(sqlite_url):
    result = doctor(Settings(database_url=sqlite_url, staff_email="nurse@clinic.example.org"))
    status, detail = lines(result)["settings"]
    assert status == "warn" and detail.startswith("AFTERCARE_STAFF_EMAIL needs the email channel")


def test_json_lists_every_check(sqlite_url, ready, relay):
    relay.stop()
    result = doctor(ready(sqlite_url), "--json")
    assert result.exit_code == 1
    checks = json.loads(result.output)
    assert [set(c) for c in checks] == [{"check", "status", "detail"}] * 8
    assert {c["check"]: c["status"] for c in checks}["smtp"] == "FAIL"


def test_urgent_replies_that_can_reach_nobody_fail(sqlite_url, ready):
    result = doctor(ready(sqlite_url, oncall_phone=None, twilio_auth_token=None, staff_email=None))
    assert result.exit_code == 1
    status, detail = lines(result)["urgent"]
    assert status == "FAIL" and detail.startswith("urgent replies reach nobody")


def test_a_staff_email_without_on_call_warns_that_nothing_is_escalated(sqlite_url, ready):
    result = doctor(ready(sqlite_url, oncall_phone=None, staff_email="nurse@clinic.example.org"))
    status, detail = lines(result)["urgent"]
    assert status == "warn" and "never escalated" in detail


def test_an_on_call_phone_with_the_sms_channel_is_a_route(sqlite_url, ready):
    status, detail = lines(doctor(ready(sqlite_url, staff_email=None)))["urgent"]
    assert (status, detail) == ("ok", "reach AFTERCARE_ONCALL_PHONE; escalated after 30m")
