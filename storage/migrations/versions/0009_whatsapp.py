"""WhatsApp: the one table that maps a citizen's pseudonym to their phone number (erased with
the reporter), and on outbox rows the platform's message id with when it was delivered and
read (WhatsApp's status notifications find the row by that id).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

String = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "whatsapp_contacts",
        sa.Column("sender_id", String(length=128), nullable=False),
        sa.Column("phone", String(length=32), nullable=False),
        sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locale", String(length=8), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sender_id", name=op.f("pk_whatsapp_contacts")),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("platform_message_id", String(length=128),
                                   nullable=True))
        batch.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("read_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_outbox_platform_message_id"), "outbox", ["platform_message_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_platform_message_id"), table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("read_at")
        batch.drop_column("delivered_at")
        batch.drop_column("platform_message_id")
    op.drop_table("whatsapp_contacts")
