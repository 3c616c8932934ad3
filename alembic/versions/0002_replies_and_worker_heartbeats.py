"""replies and worker heartbeats

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 20:06:09.745509
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_tick_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker")),
    )
    with op.batch_alter_table("worker", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_worker_last_tick_at"), ["last_tick_at"], unique=False)

    op.create_table(
        "reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_number", sa.String(length=20), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("enrollment_id", sa.Integer(), nullable=True),
        sa.Column("in_reply_to", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("urgent_reason", sa.String(length=200), nullable=True),
        sa.Column("pain_score", sa.Integer(), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handled_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["enrollment_id"], ["enrollment.id"], name=op.f("fk_reply_enrollment_id_enrollment")
        ),
        sa.ForeignKeyConstraint(
            ["in_reply_to"], ["message.id"], name=op.f("fk_reply_in_reply_to_message")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_reply_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reply")),
        sa.UniqueConstraint("provider_id", name=op.f("uq_reply_provider_id")),
    )
    with op.batch_alter_table("reply", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reply_enrollment_id_received_at", ["enrollment_id", "received_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_reply_from_number"), ["from_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_reply_received_at"), ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reply", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reply_received_at"))
        batch_op.drop_index(batch_op.f("ix_reply_from_number"))
        batch_op.drop_index("ix_reply_enrollment_id_received_at")

    op.drop_table("reply")
    with op.batch_alter_table("worker", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_last_tick_at"))

    op.drop_table("worker")
