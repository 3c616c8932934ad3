"""``aftercare doctor``: check a deployment before it goes live.

One line per check: ``ok``, ``warn`` (works, but something is missing or will wait) or ``FAIL``
(will not work as configured); the exit code is 1 if anything failed. Every check only looks:
the providers are asked read-only questions (Twilio: fetch the account; SMTP: greet, encrypt,
log in, quit, never a message) and the database is never migrated. Lines name settings, hosts and
ports, never a password, token or secret.
"""

from __future__ import annotations

import json
import smtplib
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import click
import requests
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from aftercare import db
from aftercare.app import App
from aftercare.channels.email import session_error
from aftercare.channels.registry import missing_settings
from aftercare.channels.twilio_http import TwilioTransport, classify
from aftercare.cli.group import json_option, pass_app
from aftercare.cli.output import print_json
from aftercare.config import Settings
from aftercare.errors import AftercareError
from aftercare.schedules.lint import lint
from aftercare.schedules.timeexpr import format_duration
from aftercare.smtpurl import SmtpTarget, parse_smtp_url

TIMEOUT = 5.0  # seconds, for every connection and reply: a doctor that hangs helps nobody
OK, WARN, FAIL = "ok", "warn", "FAIL"
LOOPBACK = {"localhost", "127.0.0.1", "::1"}

# Settings with no default, by field: which ones a deployment has chosen to set.
OPTIONAL = {
    "schedules_dir": "AFTERCARE_SCHEDULES_DIR",
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "twilio_from_number": "TWILIO_FROM_NUMBER",
    "twilio_messaging_service_sid": "TWILIO_MESSAGING_SERVICE_SID",
    "smtp_url": "AFTERCARE_SMTP_URL",
    "email_from": "AFTERCARE_EMAIL_FROM",
    "staff_email": "AFTERCARE_STAFF_EMAIL",
    "sms_rate": "AFTERCARE_SMS_RATE",
    "public_url": "AFTERCARE_PUBLIC_URL",
    "secret_key": "AFTERCARE_SECRET_KEY",
    "oncall_phone": "AFTERCARE_ONCALL_PHONE",
    "oncall_email": "AFTERCARE_ONCALL_EMAIL",
}


@dataclass(frozen=True)
class Check:
    check: str
    status: str
    detail: str


@click.command("doctor")
@json_option
@pass_app
def doctor(app: App, as_json: bool) -> None:
    """Check settings, database, timelines, Twilio, SMTP and public URL before going live."""
    results = [check(app) for check in CHECKS]
    if as_json:
        print_json([asdict(r) for r in results])
    else:
        width = max(len(r.check) for r in results)
        for r in results:
            click.echo(f"{r.status:<4}  {r.check:<{width}}  {r.detail}")
        tally = {s: sum(r.status == s for r in results) for s in (OK, WARN, FAIL)}
        click.echo(f"{tally[OK]} ok, {tally[WARN]} warning(s), {tally[FAIL]} failed")
    if any(r.status == FAIL for r in results):
        sys.exit(1)


# --- settings, database, timelines ----------------------------------------------------------


def check_settings(app: App) -> Check:
    """Bad values stop every other command before it runs; here they are listed instead."""
    settings = app.settings
    if settings.problems:
        return Check("settings", FAIL, "; ".join(settings.problems))
    given = [name for key, name in OPTIONAL.items() if getattr(settings, key) is not None]
    unset = [name for name in OPTIONAL.values() if name not in given]
    detail = f"all valid; set: {', '.join(given) or 'none'}; not set: {', '.join(unset) or 'none'}"
    if settings.staff_email and missing_settings(settings)["email"]:
        return Check("settings", WARN, f"AFTERCARE_STAFF_EMAIL needs the email channel; {detail}")
    return Check("settings", OK, detail)


def check_database(app: App) -> Check:
    url = db.normalise_url(app.settings.database_url)
    upgrade = "run 'aftercare db upgrade'"
    options: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        options["connect_args"] = {"connect_timeout": int(TIMEOUT)}
    engine = db.make_engine(app.settings.database_url, **options)
    where = db.where(engine)  # the file itself: a relative URL depends on the current folder
    path = db.sqlite_file(engine)
    if path is not None and not path.is_file():
        # Connecting would create the file: a check must not leave an empty database behind.
        engine.dispose()
        return Check("database", FAIL, f"{where}: no database file yet; {upgrade}")
    try:
        current = db.current_revision(engine)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return Check("database", FAIL, f"{where}: cannot connect ({reason})")
    finally:
        engine.dispose()
    head = db.head_revision()
    if current == head:
        return Check("database", OK, f"{where}: reachable, schema at head ({head})")
    if current is None:
        return Check("database", FAIL, f"{where}: reachable but has no schema; {upgrade}")
    if current not in _known_revisions():
        detail = f"{where}: schema is at {current}, newer than this aftercare knows; upgrade it"
        return Check("database", FAIL, detail)
    return Check("database", FAIL, f"{where}: schema is at {current}, needs {head}; {upgrade}")


def _known_revisions() -> set[str]:
    config = Config()
    config.set_main_option("script_location", str(db.migrations_dir()))
    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


def check_timelines(app: App) -> Check:
    try:
        timelines = list(app.catalog)
    except AftercareError as exc:  # a file with an error: file, line and reason
        return Check("timelines", FAIL, str(exc))
    if not timelines:
        return Check("timelines", FAIL, "no timelines found: staff cannot enroll anyone")
    findings = [f for t in timelines for f in lint(t, app.clinic, app.settings.quiet_hours)]
    names = ", ".join(t.name for t in timelines)
    errors = [f for f in findings if f.level == "error"]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        detail = f"compliance lint: {errors[0]}{more}; see 'aftercare schedules check'"
        return Check("timelines", FAIL, detail)
    if findings:
        detail = f"{names}: {len(findings)} lint warning(s); see 'aftercare schedules check'"
        return Check("timelines", WARN, detail)
    return Check("timelines", OK, f"{names}: loaded, compliance lint clean")


# --- providers -------------------------------------------------------------------------------


def check_twilio(app: App) -> Check:
    settings = app.settings
    unready = _unready("twilio", "sms", settings)
    if unready is not None:
        return unready
    sid, token = settings.twilio_account_sid, settings.twilio_auth_token
    assert sid is not None and token is not None  # _unready said so
    transport = TwilioTransport(settings.twilio_api_url, TIMEOUT)
    # As in SmsChannel: a non-empty `environment` keeps the SDK off os.environ (TWILIO_EDGE...).
    client = Client(sid, token, http_client=transport, environment={"TWILIO_ACCOUNT_SID": sid})
    where = f"at {settings.twilio_api_url}"
    try:
        account = client.api.v2010.accounts(sid).fetch()
    except TwilioRestException as exc:
        if int(exc.status) == 401:
            return Check("twilio", FAIL, f"credentials refused (HTTP 401) {where}")
        return Check("twilio", FAIL, f"{classify(exc)} {where}")
    except (TwilioException, requests.RequestException, json.JSONDecodeError) as exc:
        return Check("twilio", FAIL, f"{classify(exc)} {where}")
    finally:
        transport.close()
    if account.status != "active":
        return Check("twilio", FAIL, f"account {_mask(sid)} is {account.status} {where}")
    sender = "messaging service" if settings.twilio_messaging_service_sid else "TWILIO_FROM_NUMBER"
    detail = f"credentials accepted, account {_mask(sid)} active, sends from {sender} {where}"
    return Check("twilio", OK, detail)


def check_smtp(app: App) -> Check:
    unready = _unready("smtp", "email", app.settings)
    if unready is not None:
        return unready
    assert app.settings.smtp_url is not None
    target = parse_smtp_url(app.settings.smtp_url)  # checked when the settings were read
    where = f"{target.host}:{target.port}"
    try:
        done = _greet(target)
    except ValueError as exc:  # the cafile cannot be read
        return Check("smtp", FAIL, f"AFTERCARE_SMTP_URL: {exc}")
    except (smtplib.SMTPException, OSError) as exc:
        return Check("smtp", FAIL, f"{session_error(exc)} at {where}")
    encrypted = target.implicit_tls or target.starttls
    if target.username is not None and not encrypted and target.host not in LOOPBACK:
        return Check("smtp", WARN, f"{where}: the login travels unencrypted; use starttls=true")
    return Check("smtp", OK, f"{where}: {', '.join(done)} (no mail sent)")


def _greet(target: SmtpTarget) -> list[str]:
    """Connect, EHLO, STARTTLS and log in as the email channel would, then QUIT; returns what
    was done. Raises what smtplib raises."""
    done = ["connected"]
    connection: smtplib.SMTP
    if target.implicit_tls:
        context = target.tls_context()
        connection = smtplib.SMTP_SSL(target.host, target.port, timeout=TIMEOUT, context=context)
        done.append("TLS")
    else:
        connection = smtplib.SMTP(target.host, target.port, timeout=TIMEOUT)
    try:
        connection.ehlo()
        if target.starttls:
            connection.starttls(context=target.tls_context())
            connection.ehlo()
            done.append("STARTTLS")
        if target.username is not None:
            connection.login(target.username, target.password or "")
            done.append("login accepted")
        else:
            done.append("no login configured")
        connection.quit()
    finally:
        connection.close()
    return done


def _unready(check: str, channel: str, settings: Settings) -> Check | None:
    """None when the channel's settings are complete; else warn (none given) or FAIL (some)."""
    missing = missing_settings(settings)[channel]
    if not missing:
        return None
    names = {
        "sms": ("twilio_account_sid", "twilio_auth_token", "twilio_from_number",
                "twilio_messaging_service_sid"),
        "email": ("smtp_url", "email_from"),
    }[channel]  # fmt: skip
    if not any(getattr(settings, name) for name in names):
        return Check(check, WARN, f"not configured: {channel} messages wait as pending")
    return Check(check, FAIL, f"incomplete: {' and '.join(missing)} not set")


def _mask(sid: str) -> str:
    return f"{sid[:2]}…{sid[-4:]}"


# --- what links point at ----------------------------------------------------------------------


def check_public_url(app: App) -> Check:
    url = app.settings.public_url
    if not url:
        return Check(
            "public_url",
            WARN,
            "AFTERCARE_PUBLIC_URL not set: no delivery receipts, no unsubscribe links, and "
            "Twilio webhooks are refused",
        )
    parts = urlsplit(url)
    if parts.scheme != "https" and (parts.hostname or "") not in LOOPBACK:
        detail = f"{url} is not https: Twilio posts and patients open links over the internet"
        return Check("public_url", FAIL, detail)
    return Check(
        "public_url", OK, f"{url} (Twilio status callbacks at {url}/webhooks/twilio/status)"
    )


def check_secret_key(app: App) -> Check:
    settings = app.settings
    if settings.secret_key:
        return Check("secret_key", OK, "set")
    if missing_settings(settings)["email"]:
        return Check("secret_key", OK, "not set; needed only for email unsubscribe links")
    detail = "AFTERCARE_SECRET_KEY not set: emails go out without a one-click unsubscribe link"
    return Check("secret_key", WARN, detail)


def check_urgent_routes(app: App) -> Check:
    """An urgent reply must reach a person: staff email at once, or on-call when unacknowledged."""
    settings = app.settings
    missing = missing_settings(settings)
    routes = [
        name
        for name, value, channel in (
            ("AFTERCARE_STAFF_EMAIL", settings.staff_email, "email"),
            ("AFTERCARE_ONCALL_EMAIL", settings.oncall_email, "email"),
            ("AFTERCARE_ONCALL_PHONE", settings.oncall_phone, "sms"),
        )
        if value and not missing[channel]
    ]
    if not routes:
        return Check(
            "urgent",
            FAIL,
            "urgent replies reach nobody: set AFTERCARE_STAFF_EMAIL or AFTERCARE_ONCALL_EMAIL "
            "(with the email channel) or AFTERCARE_ONCALL_PHONE (with the SMS channel)",
        )
    if not any(name.startswith("AFTERCARE_ONCALL") for name in routes):
        return Check(
            "urgent",
            WARN,
            "unacknowledged urgent alerts are never escalated: set AFTERCARE_ONCALL_PHONE "
            "or AFTERCARE_ONCALL_EMAIL",
        )
    every = format_duration(settings.escalate_after)
    return Check("urgent", OK, f"reach {', '.join(routes)}; escalated after {every}")


CHECKS: tuple[Callable[[App], Check], ...] = (
    check_settings,
    check_database,
    check_timelines,
    check_twilio,
    check_smtp,
    check_public_url,
    check_secret_key,
    check_urgent_routes,
)
