"""Staff users linked to their Telegram account: the dispatch group's buttons act only for
members linked to a staff account (`barri user link-telegram NAME TELEGRAM_ID`)."""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"


def upgrade() -> None:
    op.add_column("staff_users", sa.Column("telegram_id", sa.BigInteger(), nullable=True))
    op.create_index(op.f("ix_staff_users_telegram_id"), "staff_users", ["telegram_id"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_users_telegram_id"), table_name="staff_users")
    with op.batch_alter_table("staff_users") as batch:
        batch.drop_column("telegram_id")
