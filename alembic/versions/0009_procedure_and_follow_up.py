"""procedure and follow-up times, caregivers, timeline versions: enroll when the procedure is
booked, discharge recorded later; a caregiver's own enrollment beside the patient's; the timeline
texts each enrollment was planned with

Revision ID: 0009
Revises: 0011
Create Date: 2026-12-02 15:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0009"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "timeline_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("main_file", sa.String(length=255), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timeline_version")),
        sa.UniqueConstraint(
            "name", "version", "digest", name=op.f("uq_timeline_version_name_version_digest")
        ),
    )
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        # The timeline texts the enrollment was planned with (none before this revision).
        batch_op.add_column(sa.Column("timeline_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_enrollment_timeline_id_timeline_version"),
            "timeline_version",
            ["timeline_id"],
            ["id"],
        )
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
        batch_op.drop_constraint(
            batch_op.f("fk_enrollment_timeline_id_timeline_version"), type_="foreignkey"
        )
        batch_op.drop_column("timeline_id")
    op.drop_table("timeline_version")
