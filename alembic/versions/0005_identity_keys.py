"""identity keys: one patient per person, one open enrollment per patient and procedure

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 15:20:00

Both keys are nullable and backfilled here. Where an older release already stored one person
twice (or two open enrollments of one procedure), the oldest row gets the key and the others keep
NULL: they go on working, and no data is changed or merged behind the operator's back.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_key", sa.String(length=64), nullable=True))
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("active_key", sa.String(length=96), nullable=True))
    _backfill()
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patient_identity_key"), ["identity_key"], unique=True)
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enrollment_active_key"), ["active_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_active_key"))
        batch_op.drop_column("active_key")
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_identity_key"))
        batch_op.drop_column("identity_key")


def _backfill() -> None:
    connection = op.get_bind()
    patients = connection.execute(
        sa.text("SELECT id, external_id, phone, first_name FROM patient ORDER BY id")
    )
    _set_first(
        connection, "patient", "identity_key", ((i, _identity(*rest)) for i, *rest in patients)
    )
    enrollments = connection.execute(
        sa.text(
            "SELECT id, patient_id, procedure FROM enrollment "
            "WHERE status IN ('active', 'paused') ORDER BY id"
        )
    )
    _set_first(
        connection, "enrollment", "active_key", ((i, f"{p}:{proc}") for i, p, proc in enrollments)
    )


def _set_first(
    connection: sa.Connection, table: str, column: str, keys: Iterable[tuple[int, str]]
) -> None:
    """Give each key to the first row that has it."""
    seen: set[str] = set()
    rows = []
    for row_id, key in keys:
        if key not in seen:
            seen.add(key)
            rows.append({"id": row_id, "key": key})
    if rows:
        connection.execute(sa.text(f"UPDATE {table} SET {column} = :key WHERE id = :id"), rows)


def _identity(external_id: str | None, phone: str, first_name: str) -> str:
    """aftercare.identity.identity_key as of this revision (a migration never changes meaning)."""
    if external_id:
        plain = f"mrn\x1f{external_id.strip()}"
    else:
        name = " ".join(unicodedata.normalize("NFC", first_name).casefold().split())
        plain = f"phone\x1f{phone}\x1f{name}"
    return hashlib.sha256(plain.encode("utf-8")).hexdigest()
