"""reply.answer: the automatic answer each reply got, kept on the row instead of in event JSON

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 15:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reply", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answer", sa.String(length=16), nullable=True))
    # Replies stored before this revision: their answer was only in their "replied" event.
    bind = op.get_bind()
    event = sa.table("event", sa.column("kind", sa.String), sa.column("detail", sa.JSON))
    reply = sa.table("reply", sa.column("id", sa.Integer), sa.column("answer", sa.String))
    answers = [
        {"reply": int(detail["reply_id"]), "answer": detail["answer"]}
        for (detail,) in bind.execute(sa.select(event.c.detail).where(event.c.kind == "replied"))
        if isinstance(detail, dict) and detail.get("answer") and detail.get("reply_id")
    ]
    if answers:
        bind.execute(
            reply.update().where(reply.c.id == sa.bindparam("reply")).values(
                answer=sa.bindparam("answer")
            ),
            answers,
        )


def downgrade() -> None:
    with op.batch_alter_table("reply", schema=None) as batch_op:
        batch_op.drop_column("answer")
