"""Urgent alerts nobody acknowledged, sent to on-call: a daemon pass, once per step.

An open urgent alert is due ``AFTERCARE_ESCALATE_AFTER`` after it opened, then every period
again until someone acknowledges it. Each step is claimed in the database first
(:func:`aftercare.store.alerts.claim_escalation`), committed, then sent: of any number of
daemons exactly one sends a step. A daemon that dies between the claim and the send loses that
step, and the next period's step goes out instead; sending twice would be the worse failure
(an on-call phone that buzzes for every daemon is soon muted).

What on-call gets names no patient and quotes no reply (a lock screen shows an SMS): the alert's
number, its kind, how long it has waited, and the console link where staff sign in to see more.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from aftercare.channels.base import Channel, ChannelError, Outgoing
from aftercare.clock import Clock
from aftercare.config import Settings
from aftercare.db import transaction
from aftercare.statuses import AlertKind, ChannelName
from aftercare.store import alerts
from aftercare.store.alerts import Escalation

log = logging.getLogger("aftercare.escalation")

KIND_WORDS = {
    AlertKind.URGENT_REPLY: "urgent patient reply",
    AlertKind.PAIN_RISING: "high or rising pain score",
}
# Email Message-IDs come from the outbox id; outbox rows are positive and staff emails are the
# negative reply id, so escalation emails sit below this, one id per (alert, step).
_EMAIL_ID_BASE = 10**12
_STEPS_PER_ALERT = 10**4


def escalate_due(
    sessions: sessionmaker[Session],
    channels: Mapping[str, Channel],
    settings: Settings,
    clock: Clock,
    worker: str,
) -> int:
    """Send every escalation step due now; returns how many steps this daemon took."""
    if not (settings.oncall_phone or settings.oncall_email):
        return 0  # nobody to tell: `aftercare doctor` fails on this
    with sessions() as session:
        due = alerts.due_escalations(session, clock.now())
    taken = 0
    for alert_id, seen in due:
        escalation = _claim(sessions, alert_id, seen, clock.now(), settings, worker)
        if escalation is None:
            continue
        taken += 1
        sent_to, failures = _send(escalation, channels, settings, clock.now())
        with transaction(sessions) as session:
            alerts.record_escalation(session, escalation, worker, clock.now(), sent_to, failures)
        log.info(
            "alert id=%s escalated step=%s sent=%s failed=%s",
            alert_id,
            escalation.step,
            ",".join(sent_to) or "none",
            len(failures),
        )
    return taken


def _claim(
    sessions: sessionmaker[Session],
    alert_id: int,
    seen: int,
    now: datetime,
    settings: Settings,
    worker: str,
) -> Escalation | None:
    try:
        with transaction(sessions) as session:
            return alerts.claim_escalation(
                session, alert_id, seen, now, settings.escalate_after, worker
            )
    except IntegrityError:  # another daemon's claim of this step committed first
        return None


def on_call_text(escalation: Escalation, settings: Settings, now: datetime) -> str:
    """The on-call SMS: no name, no reply text; the link leads to the console's sign-in."""
    waited = max(1, int((now - escalation.opened_at).total_seconds() // 60))
    if settings.public_url:
        where = f"{settings.public_url}/alerts/{escalation.alert_id}"
    else:
        where = f"aftercare alerts ack {escalation.alert_id}"
    return (
        f"{settings.clinic_name}: alert #{escalation.alert_id} "
        f"({KIND_WORDS.get(escalation.kind, escalation.kind)}) not acknowledged after "
        f"{waited} min (reminder {escalation.step}). {where}"
    )


def _send(
    escalation: Escalation, channels: Mapping[str, Channel], settings: Settings, now: datetime
) -> tuple[list[str], list[str]]:
    text = on_call_text(escalation, settings, now)
    email_id = -(_EMAIL_ID_BASE + escalation.alert_id * _STEPS_PER_ALERT + escalation.step)
    contacts = (
        (ChannelName.SMS, settings.oncall_phone, None, -escalation.alert_id),
        (ChannelName.EMAIL, settings.oncall_email, f"Alert #{escalation.alert_id}", email_id),
    )
    sent_to: list[str] = []
    failures: list[str] = []
    for channel_name, address, subject, message_id in contacts:
        if not address:
            continue
        channel = channels.get(channel_name)
        if channel is None:
            failures.append(f"{channel_name}: channel not configured")
            continue
        outgoing = Outgoing(message_id, channel_name, address, text, "en", subject=subject)
        try:
            channel.send(outgoing)
        except ChannelError as exc:  # its text never holds the address
            failures.append(f"{channel_name}: {exc.code or 'error'}")
            continue
        except Exception as exc:  # a channel bug must not stop the daemon's pass
            failures.append(f"{channel_name}: {type(exc).__name__}")
            continue
        sent_to.append(channel_name)
    return sent_to, failures
