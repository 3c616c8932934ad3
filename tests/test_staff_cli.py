"""``aftercare staff``: console accounts from the command line, and the first admin that
``aftercare serve`` makes from its settings. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from sqlalchemy import select

from aftercare.accounts import signin
from aftercare.models import Event
from tests.console import PASSWORD, Browser

NINA = "nina@clinic.example"


def add_nina(run, *extra: str, password: str = PASSWORD):
    return run(
        "staff", "add", "--email", "Nina@Clinic.Example", "--name", "Nina Ortiz",
        "--role", "nurse", "--password-stdin", *extra, input=password + "\n",
    )  # fmt: skip


def password_works(app, email: str, password: str) -> bool:
    checked = signin.check_password(app.sessions, email, password, "127.0.0.1", app.clock.now())
    return isinstance(checked, signin.PasswordChecked)


def test_staff_add_reads_the_password_from_stdin_and_lists_the_account(run, app):
    result = add_nina(run)

    assert result.exit_code == 0, result.output
    assert result.stdout == f"added {NINA} (nurse), id 1\n"
    listing = run("staff", "list")
    assert "nina@clinic.example  Nina Ortiz  nurse  active  off" in listing.stdout
    assert password_works(app, NINA, PASSWORD)


def test_staff_list_json_gives_each_account_without_its_password(run):
    add_nina(run)

    [account] = json.loads(run("staff", "list", "--json").stdout)

    assert account["email"] == NINA
    assert account["role"] == "nurse"
    assert account["status"] == "active"
    assert account["last_signin_at"] is None
    assert not {"password", "password_hash", "totp_secret"} & account.keys()


def test_staff_add_prompts_for_the_password_twice(run, app):
    result = run(
        "staff", "add", "--email", NINA, "--name", "Nina", "--role", "admin",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert password_works(app, NINA, PASSWORD)


def test_a_bad_flag_is_named_in_one_line_and_nothing_is_written(run, row_counts):
    before = row_counts()
    cases = {
        ("--email", "nina-at-clinic"): "error: --email: is not an email address\n",
        ("--role", "doctor"): "error: --role: must be one of viewer, nurse, admin, got 'doctor'\n",
        ("--name", "   "): "error: --name: is empty\n",
    }
    for (flag, value), message in cases.items():
        args = {"--email": NINA, "--name": "Nina", "--role": "nurse"} | {flag: value}
        flat = [part for pair in args.items() for part in pair]
        result = run("staff", "add", *flat, "--password-stdin", input=PASSWORD + "\n")
        assert (result.exit_code, result.stderr) == (1, message)

    assert row_counts() == before


def test_a_short_password_is_refused(run, row_counts):
    before = row_counts()

    result = add_nina(run, password="short")

    assert result.exit_code == 1
    assert result.stderr == "error: password: must be at least 12 characters long\n"
    assert row_counts() == before


def test_the_same_email_cannot_have_two_accounts(run):
    add_nina(run)

    result = add_nina(run)

    assert (result.exit_code, result.stderr) == (
        1,
        f"error: --email: {NINA} already has an account\n",
    )


def test_staff_disable_stops_sign_in_and_ends_open_sign_ins(run, app):
    add_nina(run)
    token = signin.begin(app.sessions, 1, "127.0.0.1", app.clock.now())

    result = run("staff", "disable", NINA)

    assert (result.exit_code, result.stdout) == (0, f"disabled {NINA}\n")
    state = signin.current(app.sessions, token, app.clock.now(), app.settings.session_idle,
                           app.settings.session_lifetime)  # fmt: skip
    assert state == "signed out"
    refused = signin.check_password(app.sessions, NINA, PASSWORD, "127.0.0.1", app.clock.now())
    assert refused == signin.Refused(signin.DISABLED)
    assert "disabled" in run("staff", "list").stdout


def test_staff_disable_of_an_unknown_email_says_so(run):
    result = run("staff", "disable", "nobody@clinic.example")

    assert (result.exit_code, result.stderr) == (
        1,
        "error: email: no staff account nobody@clinic.example\n",
    )


def test_staff_reset_password_replaces_the_old_one(run, app):
    add_nina(run)

    result = run("staff", "reset-password", NINA, "--password-stdin", input="a new long password\n")

    assert (result.exit_code, result.stdout) == (0, f"new password set for {NINA}\n")
    assert not password_works(app, NINA, PASSWORD)
    assert password_works(app, NINA, "a new long password")


def test_account_changes_are_in_the_audit_with_who_made_them(run, app):
    add_nina(run)
    run("staff", "disable", NINA)

    exported = json.loads(run("audit", "--since", "1d", "--json").stdout)

    assert [(e["kind"], e["actor"]) for e in exported] == [
        ("staff_added", "staff:test"),
        ("staff_disabled", "staff:test"),
    ]
    with app.sessions() as session:
        assert session.scalar(select(Event.detail).limit(1))["email"] == NINA


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_makes_the_first_admin_from_its_settings_on_an_empty_staff_table(
    tmp_path: Path, db_url: str
):
    password_file = tmp_path / "admin-password"
    password_file.write_text("the first admin's password\n")
    port = _free_port()
    env = os.environ | {
        "AFTERCARE_DATABASE_URL": db_url,
        "AFTERCARE_ADMIN_EMAIL": "Admin@Clinic.Example",
        "AFTERCARE_ADMIN_PASSWORD_FILE": str(password_file),
        "AFTERCARE_SECRET_KEY": "console-test-secret-0123456789",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "aftercare", "serve", "--port", str(port)],
        env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        browser = Browser(f"http://127.0.0.1:{port}", requests.Session())
        _wait_until_listening(browser)
        answer = browser.sign_in("admin@clinic.example", "the first admin's password")
        assert answer.headers["Location"] == "/"
        assert "Administrator" in browser.get("/staff").text
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=10)
    assert "created the first admin account, admin@clinic.example" in stderr


def _wait_until_listening(browser: Browser, seconds: float = 30) -> None:
    """Waits for the server process to start (not for a schedule): polls with a deadline."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            browser.get("/login")
            return
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "aftercare serve did not start"
            time.sleep(0.05)
