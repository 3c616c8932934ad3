"""staff accounts and console sign-ins: staff, signin, signin_throttle, console_setting

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-02 14:59:59.460017
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "console_setting",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        _at("updated_at"),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_console_setting")),
    )
    op.create_table(
        "signin_throttle",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        _at("last_failure_at"),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_signin_throttle")),
    )
    op.create_table(
        "staff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("totp_last_step", sa.Integer(), nullable=True),
        _at("disabled_at", nullable=True),
        sa.Column("failed_signins", sa.Integer(), nullable=False),
        _at("last_failed_signin_at", nullable=True),
        _at("last_signin_at", nullable=True),
        _at("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff")),
        sa.UniqueConstraint("email", name=op.f("uq_staff_email")),
    )
    op.create_table(
        "signin",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        _at("started_at"),
        _at("last_seen_at"),
        _at("ended_at", nullable=True),
        sa.Column("end_reason", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_signin_staff_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signin")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_signin_token_hash")),
    )
    with op.batch_alter_table("signin", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signin_staff_id"), ["staff_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("signin", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signin_staff_id"))
    op.drop_table("signin")
    op.drop_table("staff")
    op.drop_table("signin_throttle")
    op.drop_table("console_setting")
