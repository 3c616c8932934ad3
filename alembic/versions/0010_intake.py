"""intake: hl7 messages, fhir encounters and write-back, api keys

Revision ID: 0010
Revises: 0008 (the lead re-chains it at integration)
Create Date: 2026-12-02 15:07:11.836459
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_key_key_id")),
        sa.UniqueConstraint("name", name=op.f("uq_api_key_name")),
    )
    op.create_table(
        "fhir_cursor",
        sa.Column("base", sa.String(length=200), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("base", name=op.f("pk_fhir_cursor")),
    )
    op.create_table(
        "fhir_writeback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("base", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("local_id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.String(length=64), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_writeback")),
        sa.UniqueConstraint(
            "base", "kind", "local_id", name=op.f("uq_fhir_writeback_base_kind_local_id")
        ),
    )
    op.create_table(
        "api_idempotency",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_key.id"], name=op.f("fk_api_idempotency_api_key_id_api_key")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_idempotency")),
        sa.UniqueConstraint("api_key_id", "key", name=op.f("uq_api_idempotency_api_key_id_key")),
    )
    with op.batch_alter_table("api_idempotency", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_idempotency_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "fhir_encounter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("base", sa.String(length=200), nullable=False),
        sa.Column("encounter_id", sa.String(length=64), nullable=False),
        sa.Column("patient_ref", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=True),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollment.id"],
            name=op.f("fk_fhir_encounter_enrollment_id_enrollment"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_encounter")),
        sa.UniqueConstraint(
            "base", "encounter_id", name=op.f("uq_fhir_encounter_base_encounter_id")
        ),
    )
    with op.batch_alter_table("fhir_encounter", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fhir_encounter_enrollment_id"), ["enrollment_id"], unique=False
        )

    op.create_table(
        "hl7_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("control_id", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=8), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("ack_code", sa.String(length=2), nullable=False),
        sa.Column("ack", sa.Text(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("visit", sa.String(length=64), nullable=True),
        sa.Column("enrollment_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollment.id"],
            name=op.f("fk_hl7_message_enrollment_id_enrollment"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hl7_message")),
        sa.UniqueConstraint("sender", "control_id", name=op.f("uq_hl7_message_sender_control_id")),
    )
    with op.batch_alter_table("hl7_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hl7_message_outcome"), ["outcome"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_hl7_message_received_at"), ["received_at"], unique=False
        )
        batch_op.create_index("ix_hl7_message_visit", ["visit"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hl7_message", schema=None) as batch_op:
        batch_op.drop_index("ix_hl7_message_visit")
        batch_op.drop_index(batch_op.f("ix_hl7_message_received_at"))
        batch_op.drop_index(batch_op.f("ix_hl7_message_outcome"))

    op.drop_table("hl7_message")
    with op.batch_alter_table("fhir_encounter", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fhir_encounter_enrollment_id"))

    op.drop_table("fhir_encounter")
    with op.batch_alter_table("api_idempotency", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_idempotency_created_at"))

    op.drop_table("api_idempotency")
    op.drop_table("fhir_writeback")
    op.drop_table("fhir_cursor")
    op.drop_table("api_key")
