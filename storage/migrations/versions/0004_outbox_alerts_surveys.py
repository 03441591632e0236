"""Follow-ups, alerts and retention: subscriptions, alerts, the outbox, surveys, leases,
and the escalation mark on cases."""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"

String = sqlmodel.sql.sqltypes.AutoString
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("escalated_at", Stamp, nullable=True))

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reporter_id", sa.Uuid(), nullable=False),
        sa.Column("neighbourhood_code", String(length=16), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.ForeignKeyConstraint(["reporter_id"], ["reporters.id"],
                                name=op.f("fk_subscriptions_reporter_id_reporters"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("reporter_id", "neighbourhood_code", name=op.f("uq_subscriptions_reporter_id")),
    )
    op.create_index(op.f("ix_subscriptions_reporter_id"), "subscriptions", ["reporter_id"])
    op.create_index(op.f("ix_subscriptions_neighbourhood_code"), "subscriptions", ["neighbourhood_code"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_by", String(length=100), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("severity", String(length=16), nullable=False),
        sa.Column("neighbourhood_codes", sa.Text(), nullable=False),
        sa.Column("texts", sa.Text(), nullable=False),
        sa.Column("expires_at", Stamp, nullable=True),
        sa.Column("cancelled_at", Stamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(op.f("ix_alerts_created_at"), "alerts", ["created_at"])

    op.create_table(
        "outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("dedupe_key", String(length=200), nullable=False),
        sa.Column("kind", String(length=16), nullable=False),
        sa.Column("reporter_id", sa.Uuid(), nullable=False),
        sa.Column("channel", String(length=16), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=True),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("status", String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", Stamp, nullable=False),
        sa.Column("lease_owner", String(length=64), nullable=True),
        sa.Column("lease_until", Stamp, nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("sent_at", Stamp, nullable=True),
        sa.Column("last_error", String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["reporter_id"], ["reporters.id"],
                                name=op.f("fk_outbox_reporter_id_reporters"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_outbox_alert_id_alerts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_outbox_case_id_cases"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(op.f("ix_outbox_dedupe_key"), "outbox", ["dedupe_key"], unique=True)
    for column in ("kind", "reporter_id", "alert_id", "case_id", "status", "not_before"):
        op.create_index(op.f(f"ix_outbox_{column}"), "outbox", [column])

    op.create_table(
        "survey_responses",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("neighbourhood_code", String(length=16), nullable=True),
        sa.Column("sent_at", Stamp, nullable=False),
        sa.Column("solved", sa.Boolean(), nullable=True),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("safety", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("answered_at", Stamp, nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_survey_responses_case_id_cases"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_responses")),
    )
    op.create_index(op.f("ix_survey_responses_case_id"), "survey_responses", ["case_id"], unique=True)
    op.create_index(op.f("ix_survey_responses_neighbourhood_code"), "survey_responses", ["neighbourhood_code"])

    op.create_table(
        "leases",
        sa.Column("name", String(length=64), nullable=False),
        sa.Column("holder", String(length=64), nullable=False),
        sa.Column("expires_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index(op.f("ix_survey_responses_neighbourhood_code"), table_name="survey_responses")
    op.drop_index(op.f("ix_survey_responses_case_id"), table_name="survey_responses")
    op.drop_table("survey_responses")
    for column in ("kind", "reporter_id", "alert_id", "case_id", "status", "not_before"):
        op.drop_index(op.f(f"ix_outbox_{column}"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_dedupe_key"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(op.f("ix_alerts_created_at"), table_name="alerts")
    op.drop_table("alerts")
    op.drop_index(op.f("ix_subscriptions_neighbourhood_code"), table_name="subscriptions")
    op.drop_index(op.f("ix_subscriptions_reporter_id"), table_name="subscriptions")
    op.drop_table("subscriptions")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("escalated_at")
