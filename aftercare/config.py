"""Settings: read once from the environment, validated, then passed around.

No other module reads ``os.environ``. Every setting may also be given as ``NAME_FILE`` (a path whose
contents are the value), which is how container secrets are usually mounted. A bad value stops the
program at start with one line naming the setting.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aftercare.errors import SettingsError
from aftercare.smtpurl import parse_smtp_url
from aftercare.validation import parse_timezone


@dataclass(frozen=True)
class QuietHours:
    """A patient-local window in which nothing is sent; it may wrap past midnight."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///aftercare.db"
    schedules_dir: Path | None = None
    clinic_name: str = "Spine Care Clinic"
    clinic_phone: str = "+1 555 010 0199"
    # The zone the console's enroll form starts with; each patient still has their own.
    clinic_timezone: str = "America/New_York"
    quiet_hours: QuietHours | None = field(
        default_factory=lambda: QuietHours(time(21, 0), time(8, 0))
    )
    max_attempts: int = 8
    retry_backoff: float = 60.0
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_url: str = "https://api.twilio.com"
    smtp_url: str | None = None
    email_from: str | None = None
    staff_email: str | None = None
    sms_rate: float | None = None
    # Texts in flight at once. At Twilio's 100-300 ms a request, 64 reach 200-400 a second, and
    # stay under the 100 concurrent requests an account may have before Twilio answers 429.
    sms_concurrency: int = 64
    # Per number, across enrollments (TCPA health-care exemption); 0 switches a cap off.
    sms_daily_cap: int = 1
    sms_weekly_cap: int = 3
    log_format: str = "text"
    log_level: str = "info"
    public_url: str | None = None
    secret_key: str | None = None
    # Intake from hospital systems: the zone of times sent without an offset (and of the
    # patients enrolled from them), the procedure map, and the FHIR server's credentials.
    facility_timezone: str | None = None
    hl7_map: Path | None = None
    fhir_token: str | None = None
    fhir_client_id: str | None = None
    fhir_private_key: str | None = None
    fhir_key_id: str | None = None
    fhir_token_url: str | None = None
    # Urgent alerts nobody acknowledged go to on-call after this, and again every period.
    escalate_after: timedelta = timedelta(minutes=30)
    oncall_phone: str | None = None
    oncall_email: str | None = None
    # Settings that were malformed and left at their defaults: only when loaded for
    # `aftercare doctor`, which reports them among its other checks instead of stopping.
    problems: tuple[str, ...] = ()
    # The staff console: sign-ins end after this long without a request, and after the lifetime
    # whatever happens; the first admin is made from these on a database with no staff.
    session_idle: timedelta = timedelta(minutes=15)
    session_lifetime: timedelta = timedelta(hours=12)
    admin_email: str | None = None
    admin_password: str | None = None

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with CLI flags applied; ``None`` means "flag not given"."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def load_settings(environ: Mapping[str, str] | None = None, lenient: bool = False) -> Settings:
    """Build the settings from ``environ`` (default: the process environment). A bad value
    raises SettingsError; with ``lenient`` it is listed in ``problems`` and left at its default."""
    env = _Env(os.environ if environ is None else environ, lenient)
    defaults = Settings()
    settings = Settings(
        database_url=env.get("AFTERCARE_DATABASE_URL", _database_url) or defaults.database_url,
        schedules_dir=env.get("AFTERCARE_SCHEDULES_DIR", _directory),
        clinic_name=env.get("AFTERCARE_CLINIC_NAME", _non_empty) or defaults.clinic_name,
        clinic_phone=env.get("AFTERCARE_CLINIC_PHONE", _non_empty) or defaults.clinic_phone,
        clinic_timezone=env.get("AFTERCARE_CLINIC_TIMEZONE", parse_timezone)
        or defaults.clinic_timezone,
        quiet_hours=env.get("AFTERCARE_QUIET_HOURS", parse_quiet_hours, defaults.quiet_hours),
        max_attempts=env.get("AFTERCARE_MAX_ATTEMPTS", _positive_int) or defaults.max_attempts,
        retry_backoff=env.get("AFTERCARE_RETRY_BACKOFF", _positive_float) or defaults.retry_backoff,
        twilio_account_sid=env.get("TWILIO_ACCOUNT_SID", _prefixed("AC")),
        twilio_auth_token=env.get("TWILIO_AUTH_TOKEN", _non_empty),
        twilio_from_number=env.get("TWILIO_FROM_NUMBER", _e164),
        twilio_messaging_service_sid=env.get("TWILIO_MESSAGING_SERVICE_SID", _prefixed("MG")),
        twilio_api_url=env.get("AFTERCARE_TWILIO_API_URL", _http_url) or defaults.twilio_api_url,
        smtp_url=env.get("AFTERCARE_SMTP_URL", _smtp_url),
        email_from=env.get("AFTERCARE_EMAIL_FROM", _email),
        staff_email=env.get("AFTERCARE_STAFF_EMAIL", _email),
        sms_rate=env.get("AFTERCARE_SMS_RATE", _positive_float),
        sms_concurrency=env.get("AFTERCARE_SMS_CONCURRENCY", _concurrency)
        or defaults.sms_concurrency,
        sms_daily_cap=env.get("AFTERCARE_SMS_DAILY_CAP", _count, defaults.sms_daily_cap),
        sms_weekly_cap=env.get("AFTERCARE_SMS_WEEKLY_CAP", _count, defaults.sms_weekly_cap),
        log_format=env.get("AFTERCARE_LOG_FORMAT", _log_format) or defaults.log_format,
        log_level=env.get("AFTERCARE_LOG_LEVEL", _log_level) or defaults.log_level,
        public_url=env.get("AFTERCARE_PUBLIC_URL", _http_url),
        secret_key=env.get("AFTERCARE_SECRET_KEY", _secret),
        facility_timezone=env.get("AFTERCARE_FACILITY_TIMEZONE", parse_timezone),
        hl7_map=env.get("AFTERCARE_HL7_MAP", _file),
        fhir_token=env.get("AFTERCARE_FHIR_TOKEN", _non_empty),
        fhir_client_id=env.get("AFTERCARE_FHIR_CLIENT_ID", _non_empty),
        fhir_private_key=env.get("AFTERCARE_FHIR_PRIVATE_KEY", _pem_private_key),
        fhir_key_id=env.get("AFTERCARE_FHIR_KEY_ID", _non_empty),
        fhir_token_url=env.get("AFTERCARE_FHIR_TOKEN_URL", _http_url),
        escalate_after=env.get("AFTERCARE_ESCALATE_AFTER", _duration) or defaults.escalate_after,
        oncall_phone=env.get("AFTERCARE_ONCALL_PHONE", _e164),
        oncall_email=env.get("AFTERCARE_ONCALL_EMAIL", _email),
        session_idle=env.get("AFTERCARE_SESSION_IDLE", _span) or defaults.session_idle,
        session_lifetime=env.get("AFTERCARE_SESSION_LIFETIME", _span) or defaults.session_lifetime,
        admin_email=env.get("AFTERCARE_ADMIN_EMAIL", _email),
        admin_password=env.get("AFTERCARE_ADMIN_PASSWORD", _non_empty),
    )
    return replace(settings, problems=tuple(env.problems))


class _Env:
    """Looks a setting up (directly or through ``NAME_FILE``) and parses it."""

    def __init__(self, environ: Mapping[str, str], lenient: bool = False) -> None:
        self._environ = environ
        self._lenient = lenient
        self.problems: list[str] = []

    def get(self, name: str, parse: Any, default: Any = None) -> Any:
        try:
            raw = self._raw(name)
            if raw is None:
                return default
            try:
                return parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{name}: {exc}") from None
        except SettingsError as exc:
            if not self._lenient:
                raise
            self.problems.append(str(exc))
            return default

    def _raw(self, name: str) -> str | None:
        if self._environ.get(name, "").strip():
            return self._environ[name].strip()
        path = self._environ.get(f"{name}_FILE", "").strip()
        if not path:
            return None
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"{name}_FILE: cannot read {path!r} ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise SettingsError(f"{name}_FILE: {path!r} is not UTF-8 text") from None
        if not value:
            # An empty secret is a mount that went wrong, not a choice to leave it unset.
            raise SettingsError(f"{name}_FILE: {path!r} is empty")
        return value


def parse_quiet_hours(raw: str) -> QuietHours | None:
    """``"21:00-08:00"``; ``"off"`` or ``"none"`` disables quiet hours."""
    if raw.lower() in {"off", "none", ""}:
        return None
    parts = raw.replace("–", "-").split("-")
    if len(parts) != 2:
        raise ValueError(f"expected HH:MM-HH:MM or 'off', got {raw!r}")
    start, end = (_clock(p.strip(), raw) for p in parts)
    if start == end:
        raise ValueError(f"the window {raw!r} is empty; use 'off' to disable quiet hours")
    return QuietHours(start, end)


def _clock(text: str, whole: str) -> time:
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"expected HH:MM-HH:MM or 'off', got {whole!r}") from None


def _non_empty(raw: str) -> str:
    return raw


def _secret(raw: str) -> str:
    if len(raw) < 16:
        raise ValueError("must be at least 16 characters long")
    return raw


def _count(raw: str) -> int:
    """A whole number, 0 or more."""
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError(f"expected a whole number, 0 or more, got {raw!r}")
    return int(raw)


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"expected a whole number, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _concurrency(raw: str) -> int:
    value = _positive_int(raw)
    if value > MAX_CONCURRENCY:
        raise ValueError(f"must be at most {MAX_CONCURRENCY}, got {value}")
    return value


MAX_CONCURRENCY = 1000  # a thread each; far beyond what one account may have in flight


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"must be greater than 0, got {raw}")
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {raw}")
    return value


def _prefixed(prefix: str) -> Any:
    def parse(raw: str) -> str:
        if not (raw.startswith(prefix) and len(raw) == 34):
            raise ValueError(f"expected a 34-character id starting with {prefix}")
        return raw

    return parse


def _e164(raw: str) -> str:
    from aftercare.validation import parse_phone

    return parse_phone(raw)


def _duration(raw: str) -> timedelta:
    from aftercare.schedules.timeexpr import parse_duration

    return parse_duration(raw)


def _email(raw: str) -> str:
    from aftercare.validation import parse_email

    return parse_email(raw)


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"expected an http:// or https:// URL, got {raw!r}")
    return raw.rstrip("/")


def _smtp_url(raw: str) -> str:
    parse_smtp_url(raw)  # every option checked at start, not when the first email goes out
    return raw


def _database_url(raw: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValueError(f"not a database URL: {raw!r}") from None
    if url.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ValueError(f"only sqlite:/// and postgresql:// are supported, got {url.drivername}")
    return raw


def _directory(raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise ValueError(f"{raw!r} is not a folder")
    return path


def _file(raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ValueError(f"{raw!r} is not a file")
    return path


def _pem_private_key(raw: str) -> str:
    if "-----BEGIN" not in raw or "PRIVATE KEY-----" not in raw:
        raise ValueError("is not a PEM private key (-----BEGIN PRIVATE KEY-----)")
    return raw


def _log_format(raw: str) -> str:
    if raw not in {"text", "json"}:
        raise ValueError(f"expected 'text' or 'json', got {raw!r}")
    return raw


def _log_level(raw: str) -> str:
    from aftercare.logs import LEVELS

    if raw.lower() not in LEVELS:
        raise ValueError(f"expected one of {', '.join(LEVELS)}, got {raw!r}")
    return raw.lower()


def _span(raw: str) -> timedelta:
    from aftercare.schedules.timeexpr import parse_duration

    span = parse_duration(raw)
    if span <= timedelta(0):
        raise ValueError(f"must be longer than 0, got {raw!r}")
    return span
