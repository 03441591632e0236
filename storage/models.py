"""Barri's tables and input models (SQLModel on SQLAlchemy 2).

Every timestamp is a timezone-aware UTC ``datetime``: ``TZDateTime`` stores UTC and gives back
aware values on SQLite too, and refuses naive values instead of guessing their zone.
Enumerated values (category, status, ...) are plain strings in the database; the allowed
values are listed here and checked by ``CaseCreate`` and the storage functions that write them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal, TypeGuard, get_args

from pydantic import AwareDatetime
from sqlalchemy import BigInteger, DateTime, LargeBinary, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# Named constraints keep future migrations (and SQLite batch mode) predictable.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Channel = Literal["web", "telegram", "open311", "whatsapp"]
Locale = Literal["en", "es", "ca"]
Category = Literal[
    "theft",
    "vandalism",
    "noise",
    "harassment",
    "assault",
    "drugs",
    "suspicious_activity",
    "traffic",
    "incivility",
    "other",
]
ContactMode = Literal["anonymous", "chat", "contact"]
Status = Literal[
    "new", "acknowledged", "in_progress", "resolved", "closed", "rejected", "duplicate"
]
Priority = Literal["normal", "high", "urgent"]
# How a case's place was found (the same names as common.places)
LocationSource = Literal[
    "shared_location", "corner", "street_number", "street", "landmark", "neighbourhood", "not_located"
]
LOCATION_SOURCES: tuple[str, ...] = get_args(LocationSource)
StaffRole = Literal["dispatcher", "community", "admin"]

CHANNELS: tuple[str, ...] = get_args(Channel)
LOCALES: tuple[str, ...] = get_args(Locale)
CATEGORIES: tuple[str, ...] = get_args(Category)
CONTACT_MODES: tuple[str, ...] = get_args(ContactMode)
STATUSES: tuple[str, ...] = get_args(Status)
# Open: still the desk's to act on. Closed (finished): resolved or ended otherwise; the
# reporter is not followed up any more and the retention clock runs.
OPEN_STATUSES: tuple[str, ...] = ("new", "acknowledged", "in_progress")
CLOSED_STATUSES: tuple[str, ...] = ("resolved", "closed", "rejected", "duplicate")
PRIORITIES: tuple[str, ...] = get_args(Priority)
STAFF_ROLES: tuple[str, ...] = get_args(StaffRole)


# Narrow a checked string to its Literal type (the types above are what CaseCreate accepts).
def is_channel(value: str) -> TypeGuard[Channel]:
    return value in CHANNELS


def is_locale(value: str) -> TypeGuard[Locale]:
    return value in LOCALES


def is_location_source(value: object) -> TypeGuard[LocationSource]:
    return value in LOCATION_SOURCES


def is_contact_mode(value: str) -> TypeGuard[ContactMode]:
    return value in CONTACT_MODES

# CaseEvent.kind values written by storage; other layers may add their own kinds.
EVENT_CREATED = "created"
EVENT_STATUS_CHANGED = "status_changed"
EVENT_NOTE_PUBLIC = "note_public"
EVENT_NOTE_INTERNAL = "note_internal"
EVENT_HANDOFF_REQUESTED = "handoff_requested"
EVENT_CITIZEN_INFO = "citizen_info"
EVENT_ERASED = "erased"

ACTOR_CITIZEN = "citizen"
ACTOR_SYSTEM = "system"

# Length limits (database columns and CaseCreate validation).
SENDER_ID_MAX = 128
CONTACT_NAME_MAX = 200
CONTACT_PHONE_MAX = 40
CONTACT_EMAIL_MAX = 254
DESCRIPTION_MAX = 4000  # Open311 GeoReport v2's limit
ADDRESS_MAX = 500
OCCURRED_TEXT_MAX = 200
PLACE_NAME_MAX = 200
STAFF_NAME_MAX = 64
STAFF_LOCALE_MAX = 8
STAFF_ROLE_MAX = 16
SHA256_HEX_LENGTH = 64
PASSWORD_HASH_MAX = 255  # an argon2id PHC string with the default parameters is about 100


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class TZDateTime(TypeDecorator[datetime]):
    """A ``DateTime`` that stores UTC and always returns aware UTC datetimes.

    PostgreSQL gets ``timestamp with time zone``; SQLite, which has no zone support, gets the
    UTC wall time and the zone is put back on load. Naive datetimes are refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValueError("naive datetime given to a TZDateTime column; use an aware one")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _uuid_pk() -> Any:
    return Field(default_factory=uuid.uuid4, primary_key=True)


def _timestamp(*, index: bool = False, **kwargs: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=TZDateTime, index=index, **kwargs)


def _optional_timestamp() -> Any:
    return Field(default=None, sa_type=TZDateTime)


class Reporter(SQLModel, table=True):
    """A citizen as known on one channel. Deleted entirely on erasure."""

    __tablename__ = "reporters"

    id: uuid.UUID = _uuid_pk()
    channel: str = Field(max_length=16)
    sender_id: str = Field(max_length=SENDER_ID_MAX, unique=True, index=True)
    locale: str = Field(max_length=8)
    contact_name: str | None = Field(default=None, max_length=CONTACT_NAME_MAX)
    contact_phone: str | None = Field(default=None, max_length=CONTACT_PHONE_MAX)
    contact_email: str | None = Field(default=None, max_length=CONTACT_EMAIL_MAX)
    unreachable: bool = Field(default=False)
    created_at: datetime = _timestamp()
    last_seen_at: datetime = _timestamp()
    erased_at: datetime | None = _optional_timestamp()


class Case(SQLModel, table=True):
    """One report. On erasure the citizen's words and exact place go; statistics stay."""

    __tablename__ = "cases"

    id: uuid.UUID = _uuid_pk()
    ref: str = Field(max_length=7, unique=True, index=True)
    reporter_id: uuid.UUID | None = Field(
        default=None, foreign_key="reporters.id", ondelete="SET NULL", index=True
    )
    channel: str = Field(max_length=16)
    locale: str = Field(max_length=8)
    category: str = Field(max_length=32, index=True)
    description: str | None = Field(default=None, sa_type=Text)
    address: str | None = Field(default=None, sa_type=Text)
    latitude: float | None = None
    longitude: float | None = None
    # how the place was found (common.places.LOCATION_SOURCES) and how far off the point may be
    location_source: str | None = Field(default=None, max_length=20)
    location_radius: int | None = None  # metres; None without a point
    neighbourhood_code: str | None = Field(default=None, max_length=16, index=True)
    neighbourhood_name: str | None = Field(default=None, max_length=PLACE_NAME_MAX)
    district_name: str | None = Field(default=None, max_length=PLACE_NAME_MAX)
    occurred_at: datetime | None = _optional_timestamp()
    occurred_text: str | None = Field(default=None, sa_type=Text)
    contact_mode: str = Field(default="anonymous", max_length=16)
    status: str = Field(default="new", max_length=16, index=True)
    priority: str = Field(default="normal", max_length=16)
    handoff_requested_at: datetime | None = _optional_timestamp()
    duplicate_of_id: uuid.UUID | None = Field(
        default=None, foreign_key="cases.id", ondelete="SET NULL"
    )
    assignee: str | None = Field(default=None, max_length=100)
    created_at: datetime = _timestamp(index=True)
    updated_at: datetime = _timestamp(sa_column_kwargs={"onupdate": utcnow})
    acknowledged_at: datetime | None = _optional_timestamp()
    resolved_at: datetime | None = _optional_timestamp()
    closed_at: datetime | None = _optional_timestamp()
    erased_at: datetime | None = _optional_timestamp()
    escalated_at: datetime | None = _optional_timestamp()  # still new after the deadline


class CaseEvent(SQLModel, table=True):
    """One entry of a case's history."""

    __tablename__ = "case_events"

    id: uuid.UUID = _uuid_pk()
    case_id: uuid.UUID = Field(foreign_key="cases.id", ondelete="CASCADE", index=True)
    at: datetime = _timestamp()
    kind: str = Field(max_length=32)
    actor: str = Field(max_length=100)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str | None = Field(default=None, max_length=16)
    text: str | None = Field(default=None, sa_type=Text)


class Attachment(SQLModel, table=True):
    """A photo's metadata; ``case_id`` is ``None`` while the report is still being filled."""

    __tablename__ = "attachments"

    id: uuid.UUID = _uuid_pk()
    case_id: uuid.UUID | None = Field(
        default=None, foreign_key="cases.id", ondelete="CASCADE", index=True
    )
    owner_sender_id: str | None = Field(default=None, max_length=SENDER_ID_MAX, index=True)
    sha256: str = Field(max_length=64)
    size: int
    mime_type: str = Field(max_length=100)
    created_at: datetime = _timestamp()


class AttachmentData(SQLModel, table=True):
    """The bytes of an attachment, kept apart so that listing attachments stays cheap."""

    __tablename__ = "attachment_data"

    attachment_id: uuid.UUID = Field(
        primary_key=True, foreign_key="attachments.id", ondelete="CASCADE"
    )
    data: bytes = Field(sa_type=LargeBinary)


class AuditLog(SQLModel, table=True):
    """Who did what to which record. ``detail`` is JSON text and never holds personal data."""

    __tablename__ = "audit_log"

    id: uuid.UUID = _uuid_pk()
    at: datetime = _timestamp(index=True)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=64, index=True)
    subject_type: str = Field(max_length=32)
    subject_id: str = Field(max_length=64)
    detail: str | None = Field(default=None, sa_type=Text)


class StaffUser(SQLModel, table=True):
    """A member of staff using the API (see ``storage.users``); only hashes of secrets are kept.

    ``token_hash`` is the SHA-256 hex digest of the API token; ``password_hash`` is an argon2id
    PHC string, or ``None`` while no password has been set.
    """

    __tablename__ = "staff_users"

    id: uuid.UUID = _uuid_pk()
    name: str = Field(max_length=STAFF_NAME_MAX, unique=True, index=True)
    role: str = Field(max_length=STAFF_ROLE_MAX)
    token_hash: str = Field(max_length=SHA256_HEX_LENGTH, unique=True, index=True)
    password_hash: str | None = Field(default=None, max_length=PASSWORD_HASH_MAX)
    active: bool = Field(default=True)
    created_at: datetime = _timestamp()
    last_login_at: datetime | None = _optional_timestamp()
    # the language of the desk for this user (en, es, ca); None: the deployment's default
    locale: str | None = Field(default=None, max_length=STAFF_LOCALE_MAX)
    # the member's Telegram user id: the dispatch group's buttons act only for linked members
    telegram_id: int | None = Field(default=None, sa_type=BigInteger, unique=True, index=True)


class StaffSession(SQLModel, table=True):
    """A sign-in to the dispatcher dashboard (see ``storage.staff_sessions``).

    Only the SHA-256 hex digest of the cookie value is kept; a session ends on logout, when
    its user is deactivated or deleted, or when it has been idle for too long.
    """

    __tablename__ = "staff_sessions"

    id: uuid.UUID = _uuid_pk()
    token_hash: str = Field(max_length=SHA256_HEX_LENGTH, unique=True, index=True)
    user_id: uuid.UUID = Field(foreign_key="staff_users.id", ondelete="CASCADE", index=True)
    created_at: datetime = _timestamp()
    last_seen_at: datetime = _timestamp()


class CaseCreate(SQLModel):
    """Everything the citizen gives for a new case (validated; not a table)."""

    sender_id: str = Field(min_length=1, max_length=SENDER_ID_MAX)
    channel: Channel
    locale: Locale
    category: Category
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    address: str | None = Field(default=None, max_length=ADDRESS_MAX)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    location_source: LocationSource | None = None
    location_radius: int | None = Field(default=None, ge=0, le=50_000)
    neighbourhood_code: str | None = Field(default=None, max_length=16)
    neighbourhood_name: str | None = Field(default=None, max_length=PLACE_NAME_MAX)
    district_name: str | None = Field(default=None, max_length=PLACE_NAME_MAX)
    occurred_at: AwareDatetime | None = None
    occurred_text: str | None = Field(default=None, max_length=OCCURRED_TEXT_MAX)
    contact_mode: ContactMode = "anonymous"
    contact_name: str | None = Field(default=None, max_length=CONTACT_NAME_MAX)
    contact_phone: str | None = Field(default=None, max_length=CONTACT_PHONE_MAX)
    contact_email: str | None = Field(default=None, max_length=CONTACT_EMAIL_MAX)
    priority: Priority = "normal"
    attachment_ids: list[uuid.UUID] = Field(default_factory=list)


# --- Follow-ups, alerts and the outbox (issue #5) -------------------------------------------

Severity = Literal["info", "warning", "danger"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
OutboxStatus = Literal["pending", "sending", "sent", "failed", "unreachable", "cancelled"]
OUTBOX_STATUSES: tuple[str, ...] = get_args(OutboxStatus)
# OutboxMessage.kind values
OUTBOX_ALERT = "alert"
OUTBOX_STATUS = "status"
OUTBOX_FOLLOW_UP = "follow_up"
OUTBOX_SURVEY = "survey"

EVENT_ESCALATED = "escalated"
EVENT_FOLLOW_UP_SENT = "follow_up_sent"
EVENT_SURVEY_SENT = "survey_sent"
EVENT_SURVEY_ANSWERED = "survey_answered"


class Subscription(SQLModel, table=True):
    """A citizen's wish to hear about alerts in one neighbourhood; goes with the reporter."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("reporter_id", "neighbourhood_code"),)

    id: uuid.UUID = _uuid_pk()
    reporter_id: uuid.UUID = Field(foreign_key="reporters.id", ondelete="CASCADE", index=True)
    neighbourhood_code: str = Field(max_length=16, index=True)
    created_at: datetime = _timestamp()


class Alert(SQLModel, table=True):
    """A neighbourhood alert written by a community or admin user.

    ``neighbourhood_codes`` is a JSON list of codes, ``texts`` a JSON object locale -> text.
    """

    __tablename__ = "alerts"

    id: uuid.UUID = _uuid_pk()
    created_by: str = Field(max_length=100)
    created_at: datetime = _timestamp(index=True)
    severity: str = Field(default="info", max_length=16)
    neighbourhood_codes: str = Field(sa_type=Text)
    texts: str = Field(sa_type=Text)
    expires_at: datetime | None = _optional_timestamp()
    cancelled_at: datetime | None = _optional_timestamp()


class OutboxMessage(SQLModel, table=True):
    """One message to one citizen, written before it is sent (the transactional outbox).

    ``dedupe_key`` is unique, so enqueueing the same thing twice (a retried job, a restarted
    fan-out) adds nothing. ``payload`` is JSON: ``{"text": ..., "buttons": [[title, payload]]}``
    already rendered in the citizen's language. Urgent messages ignore quiet hours.
    The worker claims a row by setting ``status='sending'`` and a lease (``lease_owner``,
    ``lease_until``); an expired lease means its worker died.
    """

    __tablename__ = "outbox"

    id: uuid.UUID = _uuid_pk()
    dedupe_key: str = Field(max_length=200, unique=True, index=True)
    kind: str = Field(max_length=16, index=True)
    reporter_id: uuid.UUID = Field(foreign_key="reporters.id", ondelete="CASCADE", index=True)
    channel: str = Field(max_length=16)
    alert_id: uuid.UUID | None = Field(default=None, foreign_key="alerts.id", ondelete="CASCADE", index=True)
    case_id: uuid.UUID | None = Field(default=None, foreign_key="cases.id", ondelete="SET NULL", index=True)
    payload: str = Field(sa_type=Text)
    urgent: bool = Field(default=False)
    status: str = Field(default="pending", max_length=16, index=True)
    attempts: int = Field(default=0)
    not_before: datetime = _timestamp(index=True)
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = _optional_timestamp()
    created_at: datetime = _timestamp()
    sent_at: datetime | None = _optional_timestamp()
    last_error: str | None = Field(default=None, max_length=200)
    # the platform's id of the sent message (WhatsApp's "wamid"): its status notifications
    # (delivered, read, failed) find the row by it
    platform_message_id: str | None = Field(default=None, max_length=128, index=True)
    delivered_at: datetime | None = _optional_timestamp()
    read_at: datetime | None = _optional_timestamp()


class SurveyResponse(SQLModel, table=True):
    """The after-resolution survey of one case. Kept when the reporter is erased (no personal
    data but the optional comment, which erasure clears)."""

    __tablename__ = "survey_responses"

    id: uuid.UUID = _uuid_pk()
    case_id: uuid.UUID = Field(foreign_key="cases.id", ondelete="CASCADE", unique=True, index=True)
    neighbourhood_code: str | None = Field(default=None, max_length=16, index=True)
    sent_at: datetime = _timestamp()
    solved: bool | None = None
    satisfaction: int | None = Field(default=None, ge=1, le=5)
    safety: int | None = Field(default=None, ge=1, le=5)
    comment: str | None = Field(default=None, sa_type=Text)
    answered_at: datetime | None = _optional_timestamp()


class Lease(SQLModel, table=True):
    """A named lock held for a while by one process (the scheduler's leader lock)."""

    __tablename__ = "leases"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=64)
    expires_at: datetime = Field(sa_type=TZDateTime)


class PendingMessage(SQLModel, table=True):
    """A citizen's message the engine could not take (it was down), kept until it is replayed.

    ``id`` increases with every message, so ordering by it replays each sender's messages in
    the order they arrived. ``meta`` is the JSON metadata sent with the message to the engine.
    """

    __tablename__ = "pending_messages"

    id: int | None = Field(default=None, primary_key=True)
    sender_id: str = Field(max_length=128, index=True)
    channel: str = Field(max_length=16)
    text: str = Field(sa_type=Text)
    meta: str = Field(default="{}", sa_type=Text)
    received_at: datetime = _timestamp()


class WhatsAppContact(SQLModel, table=True):
    """The one place a WhatsApp citizen's phone number is kept: the engine, the cases and the
    logs know them by ``sender_id`` (``whatsapp:<keyed hash of the number>``). Erased with the
    reporter (``storage.erasure.erase_reporter``: forget_me and retention). ``last_inbound_at``:
    the citizen's last message, which opens WhatsApp's 24-hour window for free-form messages;
    ``locale``: the language their messages were last recognised in (for the channel's own
    notices, before the engine has answered)."""

    __tablename__ = "whatsapp_contacts"

    sender_id: str = Field(primary_key=True, max_length=SENDER_ID_MAX)
    phone: str = Field(max_length=32)
    last_inbound_at: datetime | None = _optional_timestamp()
    locale: str | None = Field(default=None, max_length=8)
    created_at: datetime = _timestamp()
