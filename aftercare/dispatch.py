"""Dispatch: claim due messages, send each through its channel, record what happened.

The unit of work is :meth:`Dispatcher.dispatch_due`; the daemon and the demo only call it. Rows are
``sending`` (committed) before any provider call, so a crash leaves evidence, never a silent gap:
:meth:`Dispatcher.reconcile` later asks the provider whether such a message went out.

Claiming, sending and recording are pipelined (aftercare.inflight): at a provider's real latency
what limits throughput is how many sends are in flight, so the senders are kept busy while the
next batch is claimed and the last ones are recorded.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from aftercare import ics, smsfit
from aftercare.channels.base import Attachment, Channel, ChannelError, Outgoing, Receipt
from aftercare.clock import Clock
from aftercare.config import Settings
from aftercare.db import transaction
from aftercare.inflight import Pipeline, Shape
from aftercare.planner import zone
from aftercare.render import Clinic, Recipient, render_message
from aftercare.retry import RetryPolicy
from aftercare.schedules.load import Catalog
from aftercare.schedules.model import Step, Timeline
from aftercare.smscap import SmsCaps
from aftercare.statuses import ChannelName
from aftercare.store import claims
from aftercare.store.outbox import Result, record_results, still_claimed
from aftercare.tokens import make_token

log = logging.getLogger("aftercare.dispatch")


@dataclass(frozen=True)
class DispatchOptions:
    batch_size: int = 100
    # Sends in flight at once (None: AFTERCARE_SMS_CONCURRENCY); network latency, not CPU, is
    # the limit.
    senders: int | None = None
    record_every: int = 200  # outcomes recorded in one transaction, at most
    # A claim older than this whose owner has not finished is presumed dead (crash, kill -9).
    lease: timedelta = timedelta(minutes=5)
    # How long to keep trying to record a batch already sent when the database connection is
    # lost (a failover, a restart, a killed backend). Giving up leaves the rows ``sending``
    # for reconciliation, which is safe but slow: another dispatcher waits out the lease.
    record_patience: timedelta = timedelta(minutes=1)


class Dispatcher:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        channels: Mapping[str, Channel],
        catalog: Catalog,
        settings: Settings,
        clock: Clock,
        worker: str,
        options: DispatchOptions | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.sessions = sessions
        self.channels = dict(channels)
        self.catalog = catalog
        self.settings = settings
        self.clock = clock
        self.worker = worker
        self.options = options or DispatchOptions()
        self.policy = RetryPolicy(settings.retry_backoff, settings.max_attempts)
        self.rng = rng or random.Random()
        self.clinic = Clinic(settings.clinic_name, settings.clinic_phone)
        self.caps = SmsCaps(settings.sms_daily_cap, settings.sms_weekly_cap, settings.quiet_hours)
        self.stopping = threading.Event()
        senders, batch = self.options.senders or settings.sms_concurrency, self.options.batch_size
        if settings.sms_rate:
            # Claimed texts wait in the pipeline for their turn at the rate: hold no more than
            # a minute's worth, far inside the lease, after which another dispatcher would
            # take them over while they still wait here.
            most = max(1, math.ceil(settings.sms_rate * RATE_QUEUE.total_seconds()))
            senders, batch = min(senders, most), min(batch, most)
        shape = Shape(senders, batch, self.options.record_every)
        self._pipeline: Pipeline[claims.Claim, Result] = Pipeline(shape)

    def close(self) -> None:
        self._pipeline.close()
        for channel in self.channels.values():
            channel.close()

    # --- the unit of work ------------------------------------------------------------------

    def dispatch_due(self) -> Counter[str]:
        """Send everything due now, batch by batch, until nothing is left or we are stopping.

        Returns how many messages ended in each status (``sent``, ``pending`` for a retry later,
        ``failed``, ``expired``, ``suppressed``, ...).
        """
        tally: Counter[str] = Counter()
        # Expiry once a pass, not once a batch: with no index on expires_at its query reads every
        # due row, and a backlog would be read again for each batch. Claims skip rows that
        # expire during the pass.
        with transaction(self.sessions) as session:
            tally["expired"] += claims.expire_overdue(session, self.clock.now(), self.worker)

        def claim(limit: int) -> tuple[list[claims.Claim], bool]:
            with transaction(self.sessions) as session:
                batch, settled = claims.claim_due(
                    session, self.channels, self.clock.now(), self.worker, limit, self.caps
                )
            tally.update(settled)
            return batch, len(batch) + sum(settled.values()) >= limit

        self._pipeline.run(
            claim,
            lambda c: self._send_one(c, look_first=False),
            lambda results: tally.update(self._record(results)),
            self.stopping,
        )
        return tally

    def reconcile(self, stale_before: datetime | None = None) -> Counter[str]:
        """Settle ``sending`` rows left by a dispatcher that died mid-send (or by a failed pass
        of this one: call it between passes, never during one).

        SMS: if the provider has the message it is recorded as sent, not sent again. Otherwise
        (and always for email, which re-sends with the same Message-ID) it is sent now, unless
        it has expired meanwhile.
        """
        tally: Counter[str] = Counter()
        stale_before = stale_before or self.clock.now() - self.options.lease
        while not self.stopping.is_set():
            now = self.clock.now()
            with transaction(self.sessions) as session:
                batch = claims.claim_stale(
                    session,
                    self.channels,
                    now,
                    self.worker,
                    stale_before,
                    self._pipeline.shape.batch_size,
                )
            if not batch:
                break
            # A batch at a time, never pipelined: the next claim_stale would take this
            # dispatcher's own rows in flight again (it takes its own sending rows at once).
            results = self._pipeline.map(lambda c: self._send_one(c, look_first=True), batch)
            tally.update(self._record(results))
        return tally

    # --- sending ---------------------------------------------------------------------------

    def _record(self, results: list[Result]) -> Counter[str]:
        """Record a sent batch, retrying while the database connection is lost (a failover, a
        restart, a killed backend): these messages went out, and rows left ``sending`` would
        wait out the lease before anyone settled them.

        A retry records only the rows still ``sending`` under our claim: the connection may
        have dropped after the server committed but before it said so.
        """
        deadline = time.monotonic() + self.options.record_patience.total_seconds()
        delay, retry = RECORD_RETRY_FIRST, False
        while True:
            try:
                with transaction(self.sessions) as session:
                    if retry:
                        results = still_claimed(session, results, self.worker)
                    now = self.clock.now()
                    return record_results(session, results, now, self.worker, self.policy, self.rng)
            except DBAPIError as exc:
                if not _connection_lost(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "recording %d sent message(s) failed, database connection lost (%s); "
                    "retrying in %.1fs",
                    len(results),
                    first_line(exc),
                    delay,
                )
                time.sleep(delay)
                delay, retry = min(delay * 2, RECORD_RETRY_MAX), True

    def _send_one(self, claim: claims.Claim, look_first: bool) -> Result:
        channel = self.channels[claim.channel]
        try:
            outgoing = self._outgoing(claim)
        except ChannelError as exc:  # rendered, but must not go out (a text too long)
            return Result(claim, error=exc)
        except Exception as exc:  # a template or timeline that cannot render this message
            log.warning(
                "render failed message=%s step=%s: %s", claim.id, claim.step, type(exc).__name__
            )
            return Result(
                claim, error=ChannelError(f"cannot render: {exc}", permanent=True, code="render")
            )
        # A retry may follow a failure that left it unclear whether the provider took the
        # message (a timeout, a dropped connection, a 5xx), perhaps in another process: look
        # before sending again, as after a crash. This is the only place that looks.
        look_first = look_first or claim.attempts > 1
        try:
            if look_first:
                found = channel.find_sent(outgoing)
                if found is not None:
                    return Result(claim, receipt=found, reconciled=True)
                if claim.expires_at <= self.clock.now():
                    return Result(claim, expired=True)
            return Result(claim, receipt=channel.send(outgoing))
        except ChannelError as exc:
            return Result(claim, error=exc)
        except Exception as exc:  # a channel bug must not stop the daemon; the row records it
            log.exception("channel %s raised on message=%s", claim.channel, claim.id)
            return Result(
                claim,
                error=ChannelError(f"{type(exc).__name__}", permanent=False, code="exception"),
            )

    def _outgoing(self, claim: claims.Claim) -> Outgoing:
        timeline = self.catalog.get(claim.procedure)
        step = timeline.step_by_id.get(claim.step)
        if step is None or claim.channel not in step.channels:
            raise LookupError(
                f"step {claim.step!r} ({claim.channel}) is no longer in {timeline.name}"
            )
        recipient = Recipient(claim.first_name, claim.timezone, claim.language, claim.discharged_at)
        rendered = render_message(
            timeline, step, claim.channel, recipient, self.clinic, claim.due_at
        )
        if not rendered.fits:
            used, limit = smsfit.length(rendered.text)
            raise ChannelError(
                f"{used} characters even without the name, more than {limit}: never sent over "
                "one part or cut (shorten the template)",
                permanent=True,
                code="sms-too-long",
            )
        address = claim.address
        if address is None:
            raise LookupError(f"no {claim.channel} address")
        attachments = (
            self._calendar(timeline, step, claim) if claim.channel == ChannelName.EMAIL else ()
        )
        outgoing = Outgoing(
            message_id=claim.id,
            channel=claim.channel,
            to=address,
            text=rendered.text,
            subject=rendered.subject,
            language=claim.language,
            timezone=claim.timezone,
            status_callback=self._status_callback(claim.id)
            if claim.channel == ChannelName.SMS
            else None,
            unsubscribe_url=self._unsubscribe_url(claim),
            attachments=attachments,
            first_attempt_at=claim.previous_claim_at or claim.due_at,
        )
        return outgoing

    def _calendar(
        self, timeline: Timeline, step: Step, claim: claims.Claim
    ) -> tuple[Attachment, ...]:
        """The patient's milestones as an .ics file, for the step that carries it."""
        if not (step.calendar and timeline.calendar):
            return ()
        discharge_day = claim.discharged_at.astimezone(zone(claim.timezone)).date()
        note = f"{self.clinic.name} {self.clinic.phone}"
        milestones = [
            ics.Milestone(
                key,
                discharge_day + timedelta(days=timeline.milestones[key].day),
                titles[claim.language],
                note,
            )
            for key, titles in timeline.calendar.items()
        ]
        domain = (self.settings.email_from or "aftercare.invalid").rpartition("@")[2]
        data = ics.calendar(
            milestones,
            scope=claim.enrollment_id,
            domain=domain,
            stamp=self.clock.now(),
            language=claim.language,
            name=self.clinic.name,
        )
        return (ics.attachment(data),)

    def _status_callback(self, message_id: int) -> str | None:
        # Our id in the URL (which Twilio signs) lets a receipt that beats the recording of
        # the SID find its message: see aftercare.store.receipts.
        base = self.settings.public_url
        return f"{base}/webhooks/twilio/status?message={message_id}" if base else None

    def _unsubscribe_url(self, claim: claims.Claim) -> str | None:
        base, secret = self.settings.public_url, self.settings.secret_key
        if claim.channel != ChannelName.EMAIL or not (base and secret):
            return None
        return f"{base}/unsubscribe/{make_token(secret, claim.patient_id, 'email')}"


# At most this long's worth of texts at AFTERCARE_SMS_RATE is claimed ahead (twice: in flight and
# one batch queued).
RATE_QUEUE = timedelta(seconds=30)
# Waits between attempts to record a batch: doubling from the first, never longer than the max.
RECORD_RETRY_FIRST = 0.1  # seconds
RECORD_RETRY_MAX = 5.0


def _connection_lost(exc: DBAPIError) -> bool:
    """The database went away or rolled the transaction back (OperationalError: connection
    refused or dropped, server shutting down, deadlock, serialisation failure): worth another
    try. Anything else (IntegrityError, ProgrammingError) is a bug that a retry would repeat."""
    return isinstance(exc, OperationalError) or exc.connection_invalidated


def first_line(exc: DBAPIError) -> str:
    """The driver's own message, without SQLAlchemy's statement and parameters."""
    return (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]


__all__ = ["DispatchOptions", "Dispatcher", "Receipt", "first_line"]
