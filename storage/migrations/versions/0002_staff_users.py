"""Staff users: API token and password hashes for dispatchers, community workers and admins."""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"


def upgrade() -> None:
    op.create_table(
        "staff_users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_users")),
    )
    op.create_index(op.f("ix_staff_users_name"), "staff_users", ["name"], unique=True)
    op.create_index(op.f("ix_staff_users_token_hash"), "staff_users", ["token_hash"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_users_token_hash"), table_name="staff_users")
    op.drop_index(op.f("ix_staff_users_name"), table_name="staff_users")

    op.drop_table("staff_users")
