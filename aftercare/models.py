"""Database tables. The ``message`` rows are the outbox and the source of truth."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from aftercare.statuses import (
    AlertKind,
    AlertState,
    Answer,
    ChannelName,
    EnrollmentStatus,
    EventKind,
    IntakeOutcome,
    MessageStatus,
    ReplyKind,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every backend (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Constraint names that are the same on every backend, so migrations can refer to them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _enum(kind: type[StrEnum], length: int) -> Enum:
    """A StrEnum column stored as its values in a VARCHAR (no database enum type, no CHECK), so
    a new member needs no migration and the schema is the same on SQLite and PostgreSQL."""
    return Enum(
        kind,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Patient(Base):
    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    first_name: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str] = mapped_column(String(20), index=True)
    email: Mapped[str | None] = mapped_column(String(254))
    timezone: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Who the patient is, normalised and hashed (aftercare.identity): unique, so two enrollments
    # of one person racing each other make one patient. NULL once purged, and for the rows an
    # older release had already stored twice (those keep working, unmatched).
    identity_key: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)

    enrollments: Mapped[list[Enrollment]] = relationship(back_populates="patient")


class Enrollment(Base):
    __tablename__ = "enrollment"
    __table_args__ = (UniqueConstraint("patient_id", "procedure", "discharged_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    procedure: Mapped[str] = mapped_column(String(64))
    schedule_version: Mapped[int] = mapped_column(Integer)
    channels: Mapped[str] = mapped_column(String(32))
    discharged_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[EnrollmentStatus] = mapped_column(
        _enum(EnrollmentStatus, 16), default=EnrollmentStatus.ACTIVE, index=True
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # "patient id:procedure" while the enrollment is active or paused, NULL once it is finished:
    # unique, so a patient has one open enrollment per procedure whatever the concurrency.
    active_key: Mapped[str | None] = mapped_column(String(96), unique=True, index=True)

    patient: Mapped[Patient] = relationship(back_populates="enrollments")
    messages: Mapped[list[Message]] = relationship(
        back_populates="enrollment", order_by="(Message.due_at, Message.id)"
    )

    @property
    def channel_list(self) -> tuple[str, ...]:
        return tuple(self.channels.split(","))


class Message(Base):
    """One send of one step occurrence on one channel."""

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step", "occurrence", "channel"),
        # The dispatcher's question: what is pending and due by now?
        Index("ix_message_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollment.id"))
    step: Mapped[str] = mapped_column(String(64))
    occurrence: Mapped[int] = mapped_column(Integer)
    channel: Mapped[ChannelName] = mapped_column(_enum(ChannelName, 16))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Before quiet hours moved it; equal to due_at when they did not.
    planned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[MessageStatus] = mapped_column(
        _enum(MessageStatus, 16), default=MessageStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    enrollment: Mapped[Enrollment] = relationship(back_populates="messages")


class Suppression(Base):
    """An address that must not be sent to on a channel (STOP, 21610, unsubscribe)."""

    __tablename__ = "suppression"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[ChannelName] = mapped_column(_enum(ChannelName, 16))
    address: Mapped[str] = mapped_column(String(254))
    reason: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Event(Base):
    """Append-only log of everything that happened, with who did it and why."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_enrollment_id_id", "enrollment_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[EventKind] = mapped_column(_enum(EventKind, 32))
    actor: Mapped[str] = mapped_column(String(64))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollment.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Reply(Base):
    """An SMS a patient sent us. The body is kept verbatim (it is shown escaped)."""

    __tablename__ = "reply"
    __table_args__ = (Index("ix_reply_enrollment_id_received_at", "enrollment_id", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Twilio's MessageSid: the same webhook delivered twice is stored once.
    provider_id: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    from_number: Mapped[str] = mapped_column(String(20), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollment.id"))
    # The last message we sent to that number before the reply: what it most likely answers.
    in_reply_to: Mapped[int | None] = mapped_column(ForeignKey("message.id"))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[ReplyKind] = mapped_column(_enum(ReplyKind, 16))
    # The automatic answer it got: the once-a-day "not monitored" notice is decided from these.
    answer: Mapped[Answer | None] = mapped_column(_enum(Answer, 16))
    urgent: Mapped[bool] = mapped_column(default=False)
    urgent_reason: Mapped[str | None] = mapped_column(String(200))
    pain_score: Mapped[int | None] = mapped_column(Integer)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handled_by: Mapped[str | None] = mapped_column(String(64))


class EarlyReceipt(Base):
    """A delivery receipt that arrived before the dispatcher recorded its message's SID
    (Twilio answered, then reported on the text, while the rest of the batch was sending).
    Applied and deleted when the SID is recorded."""

    __tablename__ = "early_receipt"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id"), index=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    twilio_status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Worker(Base):
    """A running daemon's heartbeat: /healthz and metrics read when it last dispatched."""

    __tablename__ = "worker"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_tick_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Hl7Message(Base):
    """Each HL7 v2 message received with a control id, and the ACK it got (sent again as is to a
    resend). The audit log has the event; this is the idempotency record."""

    __tablename__ = "hl7_message"
    __table_args__ = (
        UniqueConstraint("sender", "control_id"),
        Index("ix_hl7_message_visit", "visit"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sender: Mapped[str] = mapped_column(String(64))  # MSH-3^MSH-4
    control_id: Mapped[str] = mapped_column(String(200))  # MSH-10
    event: Mapped[str] = mapped_column(String(8))
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the message: a reuse shows
    outcome: Mapped[IntakeOutcome] = mapped_column(_enum(IntakeOutcome, 20), index=True)
    ack_code: Mapped[str] = mapped_column(String(2))
    ack: Mapped[str] = mapped_column(Text)
    problem: Mapped[str | None] = mapped_column(Text)  # a field and a reason, never a value
    visit: Mapped[str | None] = mapped_column(String(64))  # PV1-19: what A13/A11 cancel by
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollment.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class FhirEncounter(Base):
    """Each finished Encounter read from a FHIR server, once; links enrollments to the server's
    Patient for write-back."""

    __tablename__ = "fhir_encounter"
    __table_args__ = (UniqueConstraint("base", "encounter_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    base: Mapped[str] = mapped_column(String(200))
    encounter_id: Mapped[str] = mapped_column(String(64))
    patient_ref: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[IntakeOutcome] = mapped_column(_enum(IntakeOutcome, 20))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollment.id"), index=True)
    problem: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FhirCursor(Base):
    """Per FHIR server: the latest Encounter end seen, where the next sync starts."""

    __tablename__ = "fhir_cursor"

    base: Mapped[str] = mapped_column(String(200), primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime)


class FhirWriteback(Base):
    """A Communication or Observation written to a FHIR server for a message, reply or score."""

    __tablename__ = "fhir_writeback"
    __table_args__ = (UniqueConstraint("base", "kind", "local_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    base: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # message, reply, pain
    local_id: Mapped[int] = mapped_column(Integer)
    server_id: Mapped[str] = mapped_column(String(64))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """A key for the REST API. Only its SHA-256 digest is kept; the key is shown once."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(8), unique=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiIdempotency(Base):
    """The answer to a request sent with an ``Idempotency-Key``, replayed for a repeat."""

    __tablename__ = "api_idempotency"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_key.id"))
    key: Mapped[str] = mapped_column(String(200))
    request_digest: Mapped[str] = mapped_column(String(64))  # method, path and body
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Alert(Base):
    """One item of the staff's worklist, from open through acknowledged to resolved.

    ``cause`` names what opened it ("reply:12", "message:34", "no-answer:56"); its unique key
    makes opening idempotent, so a webhook delivered twice or two daemons open one alert.
    """

    __tablename__ = "alert"
    __table_args__ = (
        # The daemon's question: which open urgent alerts are due for escalation?
        Index("ix_alert_state_next_escalation_at", "state", "next_escalation_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cause: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[AlertKind] = mapped_column(_enum(AlertKind, 32))
    urgent: Mapped[bool] = mapped_column(default=False)
    state: Mapped[AlertState] = mapped_column(_enum(AlertState, 16), default=AlertState.OPEN)
    # Why, in a few words ("mentions fever", "pain 8, up from 4", "error 21211"): no reply text.
    reason: Mapped[str | None] = mapped_column(String(200))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"), index=True)
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollment.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id"))
    reply_id: Mapped[int | None] = mapped_column(ForeignKey("reply.id"))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledge_note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolve_note: Mapped[str | None] = mapped_column(Text)
    # Urgent alerts only: when on-call is next told, and how many times they have been.
    next_escalation_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalations: Mapped[int] = mapped_column(Integer, default=0)


class AlertEscalation(Base):
    """One step of an alert's escalation to on-call, claimed by the daemon that sends it: the
    unique (alert, step) key makes each step happen once across any number of daemons."""

    __tablename__ = "alert_escalation"
    __table_args__ = (UniqueConstraint("alert_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"))
    step: Mapped[int] = mapped_column(Integer)  # 1 for the first, then 2, 3, ...
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str] = mapped_column(String(64))


class Staff(Base):
    """A console account. The password is kept only as an argon2 hash."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # lower case
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    # A base32 TOTP secret once two-factor sign-in is set up; None before.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # The time step of the last code accepted: each code signs in once (RFC 6238, 5.2).
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Failed sign-ins since the last successful one: past a few, sign-in is slowed down.
    failed_signins: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_signin_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_signin_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SignIn(Base):
    """A console session, kept on the server so that signing out and the idle timeout are the
    server's decision: the browser's cookie holds only a random token whose hash is here."""

    __tablename__ = "signin"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    address: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(16))


class SigninThrottle(Base):
    """Failed sign-ins from one source address (any account, or none): past a few, slowed."""

    __tablename__ = "signin_throttle"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConsoleSetting(Base):
    """A switch an admin sets in the console (such as requiring two-factor sign-in for all)."""

    __tablename__ = "console_setting"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(64))


class HandledItem(Base):
    """A delivery failure or an opt-out that staff dealt with: who, when, and their note.
    (Replies carry their own handled mark.)"""

    __tablename__ = "handled_item"
    __table_args__ = (UniqueConstraint("kind", "ref_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    ref_id: Mapped[int] = mapped_column(Integer)  # message.id (failure) or suppression.id
    handled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    handled_by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
