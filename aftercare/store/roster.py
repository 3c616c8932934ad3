"""The roster of enrolled patients: one row per enrollment, filtered, searched and paged.

A page is one query for the enrollments plus one per column that needs the messages or replies,
each limited to that page's ids: the cost is the page's, not the database's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from aftercare.models import Enrollment, Message, Patient, Reply
from aftercare.statuses import MessageStatus, ReplyKind, WorkItemKind
from aftercare.store.worklist import WorkItem, attention_enrollments, open_items

PAGE_SIZE = 50


@dataclass(frozen=True)
class RosterFilter:
    status: str | None = None
    procedure: str | None = None
    needs_attention: bool = False
    search: str | None = None  # a name, an external id, or the last 4 digits of a phone


@dataclass
class RosterRow:
    enrollment_id: int
    patient_id: int
    first_name: str
    external_id: str | None
    phone: str
    timezone: str
    status: str
    procedure: str
    discharged_at: datetime
    next_due: datetime | None = None
    last_reply_at: datetime | None = None
    last_pain: int | None = None
    last_pain_at: datetime | None = None
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RosterPage:
    rows: list[RosterRow]
    total: int
    page: int
    pages: int


def roster_page(session: Session, wanted: RosterFilter, page: int = 1) -> RosterPage:
    query = _filtered(session, wanted)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = _rows(session, query.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE))
    return RosterPage(rows, total, page, pages)


def roster_all(session: Session, wanted: RosterFilter, batch: int = 500) -> Iterator[RosterRow]:
    """Every matching row, newest first, a batch at a time (the CSV export)."""
    query = _filtered(session, wanted)
    last_id: int | None = None
    while True:
        chunk = query if last_id is None else query.where(Enrollment.id < last_id)
        rows = _rows(session, chunk.limit(batch))
        yield from rows
        if len(rows) < batch:
            return
        last_id = rows[-1].enrollment_id


def _filtered(session: Session, wanted: RosterFilter) -> Select[Any]:
    query = select(Enrollment).join(Patient).order_by(Enrollment.id.desc())
    if wanted.status:
        query = query.where(Enrollment.status == wanted.status)
    if wanted.procedure:
        query = query.where(Enrollment.procedure == wanted.procedure)
    if wanted.needs_attention:
        query = query.where(Enrollment.id.in_(attention_enrollments(session)))
    term = (wanted.search or "").strip()
    if term:
        query = query.where(_matches(term))
    return query


def _matches(term: str) -> ColumnElement[bool]:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    by_name_or_id = or_(
        func.lower(Patient.first_name).like(escaped.lower() + "%", escape="\\"),
        Patient.external_id == term,
    )
    if term.isdigit() and len(term) == 4:
        return or_(by_name_or_id, Patient.phone.like("%" + term))
    return by_name_or_id


def _problems(session: Session, ids: list[int]) -> dict[int, list[str]]:
    """Open worklist items of these enrollments, in words ("urgent reply", "2 failed texts")."""
    found: dict[int, list[str]] = {}
    for item in open_items(session, enrollments=ids):
        if item.enrollment_id is None:
            continue
        found.setdefault(item.enrollment_id, []).append(_problem(item))
    return found


def _problem(item: WorkItem) -> str:
    if item.kind == WorkItemKind.FAILURE:
        what = "text" if item.message and item.message.channel == "sms" else "email"
        return f"{item.count} failed {what}" + ("s" if item.count > 1 else "")
    return {
        WorkItemKind.URGENT_REPLY: "urgent reply",
        WorkItemKind.REPLY: "question",
        WorkItemKind.OPT_OUT: "opted out",
    }[item.kind]


def _rows(session: Session, query: Select[Any]) -> list[RosterRow]:
    page = query.with_only_columns(
        Enrollment.id,
        Patient.id,
        Patient.first_name,
        Patient.external_id,
        Patient.phone,
        Patient.timezone,
        Enrollment.status,
        Enrollment.procedure,
        Enrollment.discharged_at,
    )
    rows = [RosterRow(*values) for values in session.execute(page)]
    if not rows:
        return rows
    by_id = {r.enrollment_id: r for r in rows}
    ids = list(by_id)
    # Every message of the page's enrollments, through the (enrollment, step, ...) key; asked for
    # "pending" in SQL, SQLite walks the status index over every pending row in the database.
    messages = select(Message.enrollment_id, Message.due_at, Message.status).where(
        Message.enrollment_id.in_(ids)
    )
    for enrollment_id, due, status in session.execute(messages):
        row = by_id[enrollment_id]
        if status == MessageStatus.PENDING and (row.next_due is None or due < row.next_due):
            row.next_due = due
    replies = (
        select(Reply.enrollment_id, Reply.received_at, Reply.kind, Reply.pain_score)
        .where(Reply.enrollment_id.in_(ids))
        .order_by(Reply.received_at, Reply.id)
    )
    for owner, at, kind, score in session.execute(replies):
        if owner is None:  # never: the query asks for these enrollments' replies
            continue
        row = by_id[owner]
        row.last_reply_at = at
        if kind == ReplyKind.PAIN:
            row.last_pain, row.last_pain_at = score, at
    problems = _problems(session, ids)
    for row in rows:
        row.problems = problems.get(row.enrollment_id, [])
    return rows
