"""API keys (their digests), their use, and the answers kept for ``Idempotency-Key`` repeats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aftercare.models import ApiIdempotency, ApiKey
from aftercare.statuses import EventKind
from aftercare.store import events


@dataclass(frozen=True)
class KeyRow:
    id: int
    name: str
    role: str
    digest: str
    revoked: bool


def name_taken(session: Session, name: str) -> bool:
    return session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None


def create(
    session: Session, key_id: str, name: str, role: str, digest: str, actor: str, now: datetime
) -> None:
    session.add(
        ApiKey(key_id=key_id, name=name, role=role, digest=digest, created_at=now, created_by=actor)
    )
    _event(session, EventKind.APIKEY_CREATED, actor, now, {"name": name, "role": role})


def revoke(session: Session, name: str, actor: str, now: datetime) -> bool:
    key = session.scalar(select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)))
    if key is None:
        return False
    key.revoked_at = now
    _event(session, EventKind.APIKEY_REVOKED, actor, now, {"name": name})
    return True


def listing(session: Session) -> list[dict[str, Any]]:
    keys = session.scalars(select(ApiKey).order_by(ApiKey.id))
    return [
        {
            "name": k.name,
            "role": k.role,
            "id": f"ak_{k.key_id}",
            "created_at": k.created_at,
            "created_by": k.created_by,
            "last_used_at": k.last_used_at,
            "revoked_at": k.revoked_at,
        }
        for k in keys
    ]


def by_key_id(session: Session, key_id: str) -> KeyRow | None:
    key = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
    if key is None:
        return None
    return KeyRow(key.id, key.name, key.role, key.digest, key.revoked_at is not None)


def record_use(
    session: Session, key: KeyRow, now: datetime, detail: dict[str, Any], enrollment_id: int | None
) -> None:
    """Every request made with a key, in the audit log under the key's name."""
    session.get_one(ApiKey, key.id).last_used_at = now
    events.record(
        session, EventKind.API_REQUEST, f"api:{key.name}", now, enrollment_id, detail=detail
    )


@dataclass(frozen=True)
class Kept:
    request_digest: str
    status: int
    body: str


def kept_answer(session: Session, api_key_id: int, key: str) -> Kept | None:
    row = session.execute(
        select(ApiIdempotency.request_digest, ApiIdempotency.status, ApiIdempotency.body).where(
            ApiIdempotency.api_key_id == api_key_id, ApiIdempotency.key == key
        )
    ).first()
    return Kept(*row) if row else None


def keep_answer(
    session: Session,
    api_key_id: int,
    key: str,
    request_digest: str,
    status: int,
    body: str,
    now: datetime,
) -> None:
    session.add(
        ApiIdempotency(
            api_key_id=api_key_id,
            key=key,
            request_digest=request_digest,
            status=status,
            body=body,
            created_at=now,
        )
    )
    session.flush()


def _event(
    session: Session, kind: EventKind, actor: str, now: datetime, detail: dict[str, Any]
) -> None:
    events.record(session, kind, actor, now, detail=detail)
