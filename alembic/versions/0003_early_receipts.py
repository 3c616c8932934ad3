"""early receipts: delivery receipts that arrive before their message's SID is recorded

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:19:44.803730
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "early_receipt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("twilio_status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["message.id"], name=op.f("fk_early_receipt_message_id_message")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_early_receipt")),
    )
    with op.batch_alter_table("early_receipt", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_early_receipt_message_id"), ["message_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("early_receipt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_early_receipt_message_id"))
    op.drop_table("early_receipt")
