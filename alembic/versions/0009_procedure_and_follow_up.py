"""procedure and follow-up times, caregivers: enroll when the procedure is booked, discharge
recorded later; a caregiver's own enrollment beside the patient's

Revision ID: 0009
Revises: 0004
Create Date: 2026-12-02 15:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0009"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("procedure_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("follow_up_at", sa.DateTime(timezone=True), nullable=True))
        # Enrolled at booking: discharged_at holds the procedure time until the discharge is
        # recorded (the column stays NOT NULL for daemons of the previous release).
        batch_op.add_column(
            sa.Column(
                "awaiting_discharge", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )
        # A caregiver gets the steps meant for them through an enrollment of their own (their
        # number's consent, STOP and daily cap), linked to the patient's.
        batch_op.add_column(
            sa.Column("audience", sa.String(length=16), server_default="patient", nullable=False)
        )
        batch_op.add_column(sa.Column("caregiver_for", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_enrollment_caregiver_for_enrollment"),
            "enrollment",
            ["caregiver_for"],
            ["id"],
        )
        batch_op.create_index(
            batch_op.f("ix_enrollment_caregiver_for"), ["caregiver_for"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_caregiver_for"))
        batch_op.drop_constraint(
            batch_op.f("fk_enrollment_caregiver_for_enrollment"), type_="foreignkey"
        )
        batch_op.drop_column("caregiver_for")
        batch_op.drop_column("audience")
        batch_op.drop_column("awaiting_discharge")
        batch_op.drop_column("follow_up_at")
        batch_op.drop_column("procedure_at")
