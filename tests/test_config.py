"""Settings come from the environment once; a bad value stops the program with its name."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from aftercare.config import QuietHours, Settings, load_settings
from aftercare.errors import SettingsError


def test_the_defaults_need_no_environment() -> None:
    settings = load_settings({})

    assert settings == Settings()
    assert settings.database_url == "sqlite:///aftercare.db"
    assert settings.quiet_hours == QuietHours(time(21, 0), time(8, 0))
    assert (settings.max_attempts, settings.retry_backoff) == (8, 60.0)


def test_it_reads_each_setting(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "AFTERCARE_DATABASE_URL": "postgresql+psycopg://db.example/aftercare",
            "AFTERCARE_SCHEDULES_DIR": str(tmp_path),
            "AFTERCARE_CLINIC_NAME": "Clínica San José",
            "AFTERCARE_CLINIC_PHONE": "+34 911 23 45 67",
            "AFTERCARE_QUIET_HOURS": "22:30-07:15",
            "AFTERCARE_MAX_ATTEMPTS": "3",
            "AFTERCARE_RETRY_BACKOFF": "2.5",
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "token",
            "TWILIO_FROM_NUMBER": "+1 (202) 555-0143",
            "AFTERCARE_TWILIO_API_URL": "http://127.0.0.1:8080/",
            "AFTERCARE_SMTP_URL": "smtps://user:pass@mail.example:465",
            "AFTERCARE_EMAIL_FROM": "care@example.org",
            "AFTERCARE_SMS_RATE": "1",
            "AFTERCARE_SMS_CONCURRENCY": "128",
            "AFTERCARE_LOG_FORMAT": "json",
            "AFTERCARE_PUBLIC_URL": "https://care.example.org",
            "AFTERCARE_SECRET_KEY": "s" * 32,
        }
    )

    assert settings.schedules_dir == tmp_path
    assert settings.clinic_name == "Clínica San José"
    assert settings.quiet_hours == QuietHours(time(22, 30), time(7, 15))
    assert (settings.max_attempts, settings.retry_backoff) == (3, 2.5)
    assert settings.twilio_from_number == "+12025550143"
    assert settings.twilio_api_url == "http://127.0.0.1:8080"
    assert settings.log_format == "json"
    assert (settings.sms_rate, settings.sms_concurrency) == (1.0, 128)


def test_64_texts_are_in_flight_by_default() -> None:
    assert load_settings({}).sms_concurrency == 64


@pytest.mark.parametrize("value", ["off", "OFF", "none"])
def test_quiet_hours_off_disables_them(value: str) -> None:
    assert load_settings({"AFTERCARE_QUIET_HOURS": value}).quiet_hours is None


def test_quiet_hours_may_sit_inside_one_day() -> None:
    quiet = load_settings({"AFTERCARE_QUIET_HOURS": "12:00–13:30"}).quiet_hours

    assert quiet == QuietHours(time(12, 0), time(13, 30))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AFTERCARE_DATABASE_URL", "mysql://db.example/aftercare"),
        ("AFTERCARE_DATABASE_URL", "not a url"),
        ("AFTERCARE_SCHEDULES_DIR", "/no/such/folder"),
        ("AFTERCARE_QUIET_HOURS", "21:00"),
        ("AFTERCARE_QUIET_HOURS", "25:00-08:00"),
        ("AFTERCARE_QUIET_HOURS", "08:00-08:00"),
        ("AFTERCARE_MAX_ATTEMPTS", "three"),
        ("AFTERCARE_MAX_ATTEMPTS", "0"),
        ("AFTERCARE_RETRY_BACKOFF", "-1"),
        ("AFTERCARE_RETRY_BACKOFF", "inf"),
        ("AFTERCARE_RETRY_BACKOFF", "nan"),
        ("TWILIO_ACCOUNT_SID", "XX123"),
        ("TWILIO_MESSAGING_SERVICE_SID", "AC" + "0" * 32),
        ("TWILIO_FROM_NUMBER", "555"),
        ("AFTERCARE_TWILIO_API_URL", "ftp://api.example"),
        ("AFTERCARE_SMTP_URL", "http://mail.example"),
        ("AFTERCARE_SMTP_URL", "smtp://mail.example:99999"),
        ("AFTERCARE_EMAIL_FROM", "care.example.org"),
        ("AFTERCARE_STAFF_EMAIL", "staff@"),
        ("AFTERCARE_SMS_RATE", "0"),
        ("AFTERCARE_SMS_CONCURRENCY", "0"),
        ("AFTERCARE_SMS_CONCURRENCY", "many"),
        ("AFTERCARE_SMS_CONCURRENCY", "100000"),
        ("AFTERCARE_LOG_FORMAT", "xml"),
        ("AFTERCARE_PUBLIC_URL", "care.example.org"),
        ("AFTERCARE_SECRET_KEY", "short"),
    ],
)
def test_a_bad_value_raises_an_error_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})

    message = str(caught.value)
    assert message.startswith(f"{name}: ")
    assert "\n" not in message


def test_a_secret_can_be_read_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "auth-token"
    secret.write_text("s3cr3t-token\n", encoding="utf-8")

    settings = load_settings({"TWILIO_AUTH_TOKEN_FILE": str(secret)})

    assert settings.twilio_auth_token == "s3cr3t-token"


def test_a_value_from_a_file_is_checked_like_any_other(tmp_path: Path) -> None:
    secret = tmp_path / "secret-key"
    secret.write_text("short", encoding="utf-8")

    with pytest.raises(SettingsError, match=r"^AFTERCARE_SECRET_KEY: must be at least 16"):
        load_settings({"AFTERCARE_SECRET_KEY_FILE": str(secret)})


def test_a_missing_secret_file_names_the_file_setting(tmp_path: Path) -> None:
    missing = tmp_path / "nope"

    with pytest.raises(SettingsError, match=r"^TWILIO_AUTH_TOKEN_FILE: cannot read"):
        load_settings({"TWILIO_AUTH_TOKEN_FILE": str(missing)})


def test_an_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "auth-token"
    empty.write_text("\n", encoding="utf-8")

    with pytest.raises(SettingsError, match=r"^TWILIO_AUTH_TOKEN_FILE: .* is empty"):
        load_settings({"TWILIO_AUTH_TOKEN_FILE": str(empty)})


def test_the_variable_itself_wins_over_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "auth-token"
    secret.write_text("from-file", encoding="utf-8")

    settings = load_settings(
        {"TWILIO_AUTH_TOKEN": "from-env", "TWILIO_AUTH_TOKEN_FILE": str(secret)}
    )

    assert settings.twilio_auth_token == "from-env"


def test_an_empty_variable_counts_as_unset() -> None:
    assert load_settings({"AFTERCARE_CLINIC_NAME": "  "}).clinic_name == "Spine Care Clinic"


def test_cli_flags_override_settings_but_not_with_none() -> None:
    settings = Settings().with_overrides(database_url="sqlite:///other.db", clinic_name=None)

    assert settings.database_url == "sqlite:///other.db"
    assert settings.clinic_name == "Spine Care Clinic"
