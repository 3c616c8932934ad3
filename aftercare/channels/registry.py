"""Which channels this process can send on, given its settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aftercare.channels.base import Channel, Outgoing
from aftercare.channels.console import ConsoleChannel
from aftercare.config import Settings


def missing_settings(settings: Settings) -> dict[str, list[str]]:
    """For each provider channel, the settings it lacks (empty list: ready)."""
    sms = [
        name
        for name, value in (
            ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
            ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
        )
        if not value
    ]
    if not (settings.twilio_from_number or settings.twilio_messaging_service_sid):
        sms.append("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
    email = [
        name
        for name, value in (
            ("AFTERCARE_SMTP_URL", settings.smtp_url),
            ("AFTERCARE_EMAIL_FROM", settings.email_from),
        )
        if not value
    ]
    return {"sms": sms, "email": email}


def provider_channels(settings: Settings) -> dict[str, Channel]:
    """The real channels whose settings are complete; the others are left out (their messages
    wait as pending until the settings are given)."""
    missing = missing_settings(settings)
    channels: dict[str, Channel] = {}
    if not missing["sms"]:
        from aftercare.channels.sms import SmsChannel

        channels["sms"] = SmsChannel(settings)
    if not missing["email"]:
        from aftercare.channels.email import EmailChannel

        channels["email"] = EmailChannel(settings)
    return channels


def console_channels(
    now: Callable[[], datetime], label: Callable[[Outgoing], str] | None = None
) -> dict[str, Channel]:
    """Every channel printed to the terminal instead (demo, dry runs)."""
    console = ConsoleChannel(now, label)
    return {"sms": console, "email": console}
