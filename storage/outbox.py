"""The outbox: every message Barri sends a citizen on its own initiative (alerts, status
changes, follow-ups, surveys) is first written here, one row per recipient, then sent by the
outbox worker (``bot.outbox``).

Enqueueing is idempotent: a row's ``dedupe_key`` is unique and a second insert with the same
key is ignored, so a fan-out or a job that runs again after a crash adds nobody twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from storage.db import atomic
from storage.models import Alert, OutboxMessage, Reporter, utcnow

# Inserting in chunks keeps statements under SQLite's bound-parameter limit.
INSERT_CHUNK = 500


@dataclass(frozen=True)
class OutgoingItem:
    """What to enqueue for one recipient."""

    reporter_id: uuid.UUID
    channel: str
    dedupe_key: str
    kind: str
    text: str
    buttons: Sequence[tuple[str, str]] = field(default_factory=tuple)
    urgent: bool = False
    alert_id: uuid.UUID | None = None
    case_id: uuid.UUID | None = None
    not_before: datetime | None = None

    @classmethod
    def to(cls, reporter: Reporter, **kwargs: Any) -> OutgoingItem:
        return cls(reporter_id=reporter.id, channel=reporter.channel, **kwargs)


def encode_payload(text: str, buttons: Iterable[tuple[str, str]] = ()) -> str:
    return json.dumps({"text": text, "buttons": [list(button) for button in buttons]}, ensure_ascii=False)


def decode_payload(payload: str) -> tuple[str, list[tuple[str, str]]]:
    data = json.loads(payload)
    return str(data.get("text", "")), [(str(title), str(value)) for title, value in data.get("buttons", [])]


def enqueue(*, session: Session, items: Iterable[OutgoingItem]) -> int:
    """Add the items not already queued (by ``dedupe_key``); commit; return how many were new."""
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "dedupe_key": item.dedupe_key,
            "kind": item.kind,
            "reporter_id": item.reporter_id,
            "channel": item.channel,
            "alert_id": item.alert_id,
            "case_id": item.case_id,
            "payload": encode_payload(item.text, item.buttons),
            "urgent": item.urgent,
            "status": "pending",
            "attempts": 0,
            "not_before": item.not_before or now,
            "created_at": now,
        }
        for item in items
    ]
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    added = 0
    with atomic(session):
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            statement = (
                insert(OutboxMessage).values(chunk)
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(col(OutboxMessage.id))
            )
            added += len(session.execute(statement).all())  # rowcount is 0 on psycopg here
    return added


# --- the worker's side ---------------------------------------------------------------------
#
# A row's life: pending -> sending (claimed, with a lease) -> sent | failed | unreachable |
# cancelled, or back to pending (retry later, or released unsent). A claimed row whose lease
# ran out belongs to a worker that died: it is claimable again. Every function commits its own
# work.

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
UNREACHABLE = "unreachable"
CANCELLED = "cancelled"  # its alert was cancelled or expired before it went (storage.alerts)
STATUSES = (PENDING, SENDING, SENT, FAILED, UNREACHABLE, CANCELLED)

ERROR_MAX = 200  # OutboxMessage.last_error


@dataclass(frozen=True)
class ClaimedMessage:
    """A row this worker holds the lease on, with what it needs to send it."""

    id: uuid.UUID
    reporter_id: uuid.UUID
    sender_id: str
    channel: str
    kind: str
    text: str
    buttons: list[tuple[str, str]]
    urgent: bool
    attempts: int  # this attempt's number (1 for the first)
    alert_id: uuid.UUID | None
    case_id: uuid.UUID | None


def _claimable(*, channel: str, now: datetime) -> Any:
    return and_(
        col(OutboxMessage.channel) == channel,
        or_(
            and_(col(OutboxMessage.status) == PENDING, col(OutboxMessage.not_before) <= now),
            and_(col(OutboxMessage.status) == SENDING, col(OutboxMessage.lease_until) < now),  # its worker died
        ),
    )


def claim_due(
    *,
    session: Session,
    channel: str,
    owner: str,
    lease_seconds: float,
    limit: int,
    now: datetime | None = None,
    sender_ids: Collection[str] | None = None,
    urgent_only: bool = False,
) -> list[ClaimedMessage]:
    """Take up to ``limit`` due rows of ``channel`` (urgent first, then oldest) for ``owner``.

    Due: pending with ``not_before <= now``, or left ``sending`` by a worker whose lease expired.
    ``sender_ids`` restricts to those recipients (the web-chat citizens connected here).
    Rows of reporters already known to be unreachable are marked so and not returned.
    Two workers never get the same row: PostgreSQL locks the candidates with
    ``FOR UPDATE SKIP LOCKED``; SQLite runs the one UPDATE under its database write lock, and
    the UPDATE repeats the conditions, so a row claimed meanwhile is not taken again.
    """
    now = now or utcnow()
    if limit <= 0 or (sender_ids is not None and not sender_ids):
        return []
    conditions = [_claimable(channel=channel, now=now)]
    if urgent_only:
        conditions.append(col(OutboxMessage.urgent).is_(True))
    if sender_ids is not None:
        conditions.append(
            col(OutboxMessage.reporter_id).in_(
                select(col(Reporter.id)).where(col(Reporter.sender_id).in_(list(sender_ids)))
            )
        )
    candidates = (
        select(col(OutboxMessage.id))
        .where(*conditions)
        .order_by(col(OutboxMessage.urgent).desc(), col(OutboxMessage.not_before), col(OutboxMessage.created_at))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        # a materialized CTE: an IN (subquery ... LIMIT) may be evaluated more than once
        locked = candidates.with_for_update(skip_locked=True).cte("candidates").prefix_with("MATERIALIZED")
        chosen: Any = col(OutboxMessage.id).in_(select(locked.c.id))
    else:
        chosen = col(OutboxMessage.id).in_(candidates.scalar_subquery())
    statement = (
        update(OutboxMessage)
        .where(chosen, *conditions)
        .values(status=SENDING, lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds),
                attempts=col(OutboxMessage.attempts) + 1)  # a claim is an attempt (a crash counts too)
        .returning(col(OutboxMessage.id))
    )
    with atomic(session):
        ids = [row[0] for row in session.execute(statement).all()]
        if not ids:
            return []
        rows = session.execute(
            select(OutboxMessage, col(Reporter.sender_id), col(Reporter.unreachable), col(Alert.cancelled_at),
                   col(Alert.expires_at))
            .join(Reporter, col(Reporter.id) == col(OutboxMessage.reporter_id))
            .outerjoin(Alert, col(Alert.id) == col(OutboxMessage.alert_id))
            .where(col(OutboxMessage.id).in_(ids))
            .execution_options(populate_existing=True)  # the values just written, not a cached object's
        ).all()
        claimed: list[ClaimedMessage] = []
        gone: list[uuid.UUID] = []
        stale: list[uuid.UUID] = []
        for message, sender_id, unreachable, cancelled_at, expires_at in rows:
            if cancelled_at is not None or (expires_at is not None and expires_at <= now):
                stale.append(message.id)  # nothing stale goes out between two expiry sweeps
                continue
            if unreachable:
                gone.append(message.id)
                continue
            text, buttons = decode_payload(message.payload)
            claimed.append(ClaimedMessage(
                id=message.id, reporter_id=message.reporter_id, sender_id=sender_id, channel=message.channel,
                kind=message.kind, text=text, buttons=buttons, urgent=message.urgent, attempts=message.attempts,
                alert_id=message.alert_id, case_id=message.case_id,
            ))
        if stale:
            session.execute(
                update(OutboxMessage).where(col(OutboxMessage.id).in_(stale))
                .values(status=CANCELLED, lease_owner=None, lease_until=None, attempts=_one_attempt_less())
            )
        if gone:
            session.execute(
                update(OutboxMessage).where(col(OutboxMessage.id).in_(gone))
                .values(status=UNREACHABLE, lease_owner=None, lease_until=None,
                        last_error="the citizen blocked the bot earlier")
            )
    order = {row_id: index for index, row_id in enumerate(ids)}
    claimed.sort(key=lambda row: order[row.id])
    return claimed


def _run(session: Session, statement: Any) -> int:
    with atomic(session):
        count = session.execute(statement).rowcount  # type: ignore[attr-defined]
    return int(count or 0)


def _mine(message_id: uuid.UUID, owner: str) -> Any:
    return and_(col(OutboxMessage.id) == message_id, col(OutboxMessage.status) == SENDING,
                col(OutboxMessage.lease_owner) == owner)


def renew_lease(
    *, session: Session, message_id: uuid.UUID, owner: str, lease_seconds: float, now: datetime | None = None
) -> bool:
    """Extend the lease of a row held long (it waited for flood control). False when the row
    is no longer this worker's (its lease ran out and another worker took it): do not send it."""
    now = now or utcnow()
    return _run(session, update(OutboxMessage).where(_mine(message_id, owner)).values(
        lease_until=now + timedelta(seconds=lease_seconds),
    )) == 1


def _one_attempt_less() -> Any:
    return case((col(OutboxMessage.attempts) > 0, col(OutboxMessage.attempts) - 1), else_=0)


def mark_sent(*, session: Session, message_id: uuid.UUID, now: datetime | None = None,
              platform_message_id: str | None = None) -> None:
    """The platform took the message. Recorded whoever holds the lease now: it was sent.
    ``platform_message_id``: the platform's id for it, where its delivery reports name it."""
    _run(session, update(OutboxMessage).where(
        col(OutboxMessage.id) == message_id, col(OutboxMessage.status) != SENT,
    ).values(
        status=SENT, sent_at=now or utcnow(), lease_owner=None, lease_until=None, last_error=None,
        platform_message_id=platform_message_id,
    ))


def retry_later(
    *,
    session: Session,
    message_id: uuid.UUID,
    owner: str,
    not_before: datetime,
    error: str | None = None,
    count_attempt: bool = True,
) -> bool:
    """Back to pending until ``not_before``. ``count_attempt=False`` gives back the attempt
    the claim counted (flood control or a citizen who went offline is not the message's fault)."""
    values: dict[str, Any] = {"status": PENDING, "not_before": not_before, "lease_owner": None, "lease_until": None}
    if error is not None:
        values["last_error"] = error[:ERROR_MAX]
    if not count_attempt:
        values["attempts"] = _one_attempt_less()
    return _run(session, update(OutboxMessage).where(_mine(message_id, owner)).values(**values)) == 1


def release(*, session: Session, message_ids: Iterable[uuid.UUID], owner: str) -> int:
    """Give back claimed rows this worker did not try (on shutdown): claimable again at once."""
    ids = list(message_ids)
    if not ids:
        return 0
    return _run(session, update(OutboxMessage).where(
        col(OutboxMessage.id).in_(ids), col(OutboxMessage.status) == SENDING, col(OutboxMessage.lease_owner) == owner,
    ).values(status=PENDING, lease_owner=None, lease_until=None, attempts=_one_attempt_less()))


def mark_failed(*, session: Session, message_id: uuid.UUID, owner: str, error: str) -> bool:
    """Given up on (a permanent error, or too many attempts)."""
    return _run(session, update(OutboxMessage).where(_mine(message_id, owner)).values(
        status=FAILED, lease_owner=None, lease_until=None, last_error=error[:ERROR_MAX],
    )) == 1


def mark_unreachable(*, session: Session, message_id: uuid.UUID, owner: str, error: str) -> int:
    """The citizen blocked the bot: this row, and every other row still waiting for them, is
    unreachable, and so is the reporter (nothing more is tried for them until they file a new
    report).
    Returns how many rows were marked."""
    with atomic(session):
        message = session.get(OutboxMessage, message_id)
        if message is None:
            return 0
        reporter_id = message.reporter_id
        marked = session.execute(update(OutboxMessage).where(
            col(OutboxMessage.reporter_id) == reporter_id,
            or_(_mine(message_id, owner), col(OutboxMessage.status) == PENDING),
        ).values(status=UNREACHABLE, lease_owner=None, lease_until=None, last_error=error[:ERROR_MAX])).rowcount  # type: ignore[attr-defined]
        session.execute(update(Reporter).where(col(Reporter.id) == reporter_id).values(unreachable=True))
    return int(marked or 0)


def defer_non_urgent(*, session: Session, channel: str, until: datetime) -> int:
    """Quiet hours: every non-urgent pending row of ``channel`` due before ``until`` waits
    until then (deferred, never dropped). Returns how many rows moved."""
    return _run(session, update(OutboxMessage).where(
        col(OutboxMessage.channel) == channel,
        col(OutboxMessage.status) == PENDING,
        col(OutboxMessage.urgent).is_(False),
        col(OutboxMessage.not_before) < until,
    ).values(not_before=until))


def counts_by_status(*, session: Session, channel: str | None = None) -> dict[str, int]:
    """How many rows are in each status (for the benchmark and monitoring)."""
    statement = select(col(OutboxMessage.status), func.count()).group_by(col(OutboxMessage.status))
    if channel is not None:
        statement = statement.where(col(OutboxMessage.channel) == channel)
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({status: int(count) for status, count in session.execute(statement).all()})
    return counts


def retry_failed(*, session: Session, alert_id: uuid.UUID | None = None, now: datetime | None = None) -> int:
    """Give failed rows (of one alert, or all) another round of attempts, due at once. Rows of
    a cancelled or expired alert stay failed. Returns how many rows were put back."""
    now = now or utcnow()
    live_alerts = select(col(Alert.id)).where(
        col(Alert.cancelled_at).is_(None), or_(col(Alert.expires_at).is_(None), col(Alert.expires_at) > now))
    statement = update(OutboxMessage).where(
        col(OutboxMessage.status) == FAILED,
        or_(col(OutboxMessage.alert_id).is_(None), col(OutboxMessage.alert_id).in_(live_alerts)),
    )
    if alert_id is not None:
        statement = statement.where(col(OutboxMessage.alert_id) == alert_id)
    return _run(session, statement.values(status=PENDING, attempts=0, not_before=now, lease_owner=None,
                                          lease_until=None))


def counts_by_status_and_channel(*, session: Session) -> dict[tuple[str, str], int]:
    """How many rows are in each (status, channel) (for monitoring)."""
    statement = select(col(OutboxMessage.status), col(OutboxMessage.channel), func.count()).group_by(
        col(OutboxMessage.status), col(OutboxMessage.channel))
    return {(status, channel): int(count) for status, channel, count in session.execute(statement).all()}


def oldest_due(*, session: Session, now: datetime) -> dict[str, datetime]:
    """Per channel, since when the oldest row due and not yet sent has waited (its
    ``not_before``): how far behind the sending is. Channels with nothing due are absent."""
    statement = select(col(OutboxMessage.channel), func.min(col(OutboxMessage.not_before))).where(
        col(OutboxMessage.status).in_((PENDING, SENDING)), col(OutboxMessage.not_before) <= now,
    ).group_by(col(OutboxMessage.channel))
    found = {}
    for channel, moment in session.execute(statement).all():
        if moment is not None:
            found[channel] = moment if moment.tzinfo is not None else moment.replace(tzinfo=now.tzinfo)
    return found
