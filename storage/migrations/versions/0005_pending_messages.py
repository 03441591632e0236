"""Citizen messages kept while the engine is down, replayed in order when it is back."""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"

String = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "pending_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender_id", String(length=128), nullable=False),
        sa.Column("channel", String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("meta", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_messages")),
    )
    op.create_index(op.f("ix_pending_messages_sender_id"), "pending_messages", ["sender_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pending_messages_sender_id"), table_name="pending_messages")
    op.drop_table("pending_messages")
