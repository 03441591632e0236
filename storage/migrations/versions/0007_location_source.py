"""How a case's place was found (location_source) and how approximate its point is
(location_radius, metres), for the desk, the map and duplicate detection (issue #11)."""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"

String = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("location_source", String(length=20), nullable=True))
        batch.add_column(sa.Column("location_radius", sa.Integer(), nullable=True))
    # cases from before: coordinates came only from a shared location
    op.execute(
        "UPDATE cases SET location_source = 'shared_location', location_radius = 25 "
        "WHERE latitude IS NOT NULL AND longitude IS NOT NULL"
    )
    op.execute(
        "UPDATE cases SET location_source = 'neighbourhood' "
        "WHERE location_source IS NULL AND neighbourhood_code IS NOT NULL"
    )
    op.execute(
        "UPDATE cases SET location_source = 'not_located' WHERE location_source IS NULL AND address IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("location_radius")
        batch.drop_column("location_source")
