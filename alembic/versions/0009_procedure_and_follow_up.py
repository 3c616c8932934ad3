"""procedure and follow-up times: enroll when the procedure is booked, discharge recorded later

Revision ID: 0009
Revises: 0003
Create Date: 2026-12-02 15:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0009"
down_revision: str | None = "0003"
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


def downgrade() -> None:
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.drop_column("awaiting_discharge")
        batch_op.drop_column("follow_up_at")
        batch_op.drop_column("procedure_at")
