"""Neighbourhood alerts: writing one, fanning it out to the outbox, reporting its delivery,
cancelling it, and withdrawing what was not sent before it expired.

An alert and its outbox rows (one per reachable subscriber of its neighbourhoods, however many
of them the subscriber follows) are written in one transaction, so an alert is never stored
without its recipients nor half fanned out. The message text is rendered here, once per
recipient, in the recipient's language by the ``compose`` function the caller passes (the bot
layer owns the catalogs). Alerts of severity ``danger`` are urgent: they ignore quiet hours.

Neighbourhood names are passed in too (``places``: code -> name), so storage does not read the
boundaries file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.audit import record_audit
from storage.db import atomic
from storage.errors import StorageError
from storage.models import (
    LOCALES,
    OUTBOX_ALERT,
    SEVERITIES,
    Alert,
    OutboxMessage,
    Reporter,
    Subscription,
    utcnow,
)
from storage.outbox import OutgoingItem, enqueue

ALERT_TEXT_MAX = 1000
MAX_NEIGHBOURHOODS = 100
IDEMPOTENCY_KEY_MAX = 200
# Channels that can carry a message Barri starts (Open311 clients only poll).
ALERT_CHANNELS = ("web", "telegram", "whatsapp")
# An Idempotency-Key maps to one alert id per user: a retried POST finds the same alert.
_IDEMPOTENCY_NAMESPACE = uuid.UUID("5b0e4f2e-5f5c-4c39-9a51-3f2f0b7a1c11")

# (locale, severity, text, names of the recipient's neighbourhoods in the alert) -> message
Compose = Callable[[str, str, str, Sequence[str]], str]


class InvalidAlert(StorageError):
    """The alert was refused; ``problems`` lists (field, what is wrong) for the caller to show."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems))
        self.problems = problems


class IdempotencyConflict(StorageError):
    """The Idempotency-Key was already used by this user for a different alert."""


class NotTheAuthor(StorageError):
    """Only the alert's author (or an admin) may cancel it."""


@dataclass(frozen=True)
class AlertIn:
    neighbourhood_codes: Sequence[str]
    severity: str
    texts: Mapping[str, str]
    expires_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryReport:
    sent: int = 0
    pending: int = 0  # waiting or being sent right now
    failed: int = 0
    unreachable: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.pending + self.failed + self.unreachable + self.cancelled

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "pending": self.pending, "failed": self.failed,
                "unreachable": self.unreachable, "cancelled": self.cancelled, "total": self.total}


@dataclass(frozen=True)
class CreatedAlert:
    alert: Alert
    recipients: int  # outbox rows this call added (0 when an idempotent retry found the alert)
    replayed: bool = False
    report: DeliveryReport = field(default_factory=DeliveryReport)


# --------------------------------------------------------------------------- reading the JSON columns


def alert_codes(alert: Alert) -> list[str]:
    return [str(code) for code in json.loads(alert.neighbourhood_codes)]


def alert_texts(alert: Alert) -> dict[str, str]:
    return {str(k): str(v) for k, v in json.loads(alert.texts).items()}


def alert_state(alert: Alert, now: datetime | None = None) -> str:
    """``cancelled``, ``expired`` or ``active``."""
    if alert.cancelled_at is not None:
        return "cancelled"
    if alert.expires_at is not None and alert.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def pick_text(texts: Mapping[str, str], locale: str, default_locale: str) -> tuple[str, str]:
    """(locale, text): the recipient's language, else the default one, else any given text."""
    for candidate in (locale, default_locale, *LOCALES, *sorted(texts)):
        text = texts.get(candidate)
        if text:
            return candidate, text
    raise ValueError("an alert without any text")


# --------------------------------------------------------------------------- validation


def validate_alert(alert_in: AlertIn, *, places: Mapping[str, str], now: datetime) -> tuple[list[str], dict[str, str]]:
    """The codes (deduplicated, in order) and the non-empty texts; ``InvalidAlert`` otherwise."""
    problems: list[tuple[str, str]] = []
    codes = list(dict.fromkeys(str(code).strip() for code in alert_in.neighbourhood_codes))
    if not codes:
        problems.append(("neighbourhoods", "choose at least one neighbourhood"))
    elif len(codes) > MAX_NEIGHBOURHOODS:
        problems.append(("neighbourhoods", f"at most {MAX_NEIGHBOURHOODS} neighbourhoods"))
    unknown = [code for code in codes if code not in places]
    if unknown:
        problems.append(("neighbourhoods", "unknown neighbourhood code(s): " + ", ".join(unknown[:10])))
    if alert_in.severity not in SEVERITIES:
        problems.append(("severity", "must be one of " + ", ".join(SEVERITIES)))
    texts: dict[str, str] = {}
    for locale, raw in alert_in.texts.items():
        if locale not in LOCALES:
            problems.append((f"texts.{locale}", "the language must be one of " + ", ".join(LOCALES)))
            continue
        text = (raw or "").strip()
        if len(text) > ALERT_TEXT_MAX:
            problems.append((f"texts.{locale}", f"at most {ALERT_TEXT_MAX} characters (this one has {len(text)})"))
        elif text:
            texts[locale] = text
    if not texts and not any(name.startswith("texts.") for name, _ in problems):
        problems.append(("texts", "write the alert in at least one language"))
    expires_at = alert_in.expires_at
    if expires_at is not None:
        if expires_at.tzinfo is None:
            problems.append(("expires_at", "give a time zone (for example 2026-12-01T20:00:00+01:00)"))
        elif expires_at <= now:
            problems.append(("expires_at", "must be in the future"))
    if problems:
        raise InvalidAlert(problems)
    return codes, texts


# --------------------------------------------------------------------------- creating and fanning out


def idempotent_alert_id(*, actor: str, key: str) -> uuid.UUID:
    return uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{actor}\n{key}")


def subscribers_by_reporter(*, session: Session, codes: Sequence[str]) -> list[tuple[Reporter, list[str]]]:
    """Reachable subscribers of any of ``codes``, each once, with the codes they follow among them."""
    rows = session.exec(
        select(Reporter, Subscription.neighbourhood_code)
        .join(Subscription, col(Subscription.reporter_id) == col(Reporter.id))
        .where(col(Subscription.neighbourhood_code).in_(list(codes)),
               col(Reporter.unreachable).is_(False),
               col(Reporter.erased_at).is_(None),
               col(Reporter.channel).in_(ALERT_CHANNELS))
        .order_by(col(Reporter.id))
    ).all()
    order = {code: index for index, code in enumerate(codes)}
    found: dict[uuid.UUID, tuple[Reporter, list[str]]] = {}
    for reporter, code in rows:
        found.setdefault(reporter.id, (reporter, []))[1].append(code)
    for _, followed in found.values():
        followed.sort(key=lambda code: order.get(code, len(order)))
    return list(found.values())


def _same_alert(alert: Alert, codes: list[str], texts: dict[str, str], alert_in: AlertIn) -> bool:
    return (alert_codes(alert) == codes and alert_texts(alert) == texts and alert.severity == alert_in.severity
            and alert.expires_at == alert_in.expires_at)


def create_alert(
    *,
    session: Session,
    alert_in: AlertIn,
    actor: str,
    places: Mapping[str, str],
    compose: Compose,
    default_locale: str = "en",
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> CreatedAlert:
    """Validate, store the alert and queue one message per reachable subscriber; commit once.

    With an ``idempotency_key`` a repeated call by the same ``actor`` returns the alert stored
    the first time (``replayed``) and queues nothing more; the same key with a different alert
    raises ``IdempotencyConflict``. Raises ``InvalidAlert`` before writing anything.
    """
    now = now or utcnow()
    alert_id = uuid.uuid4()
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
            raise InvalidAlert([("Idempotency-Key", f"between 1 and {IDEMPOTENCY_KEY_MAX} characters")])
        alert_id = idempotent_alert_id(actor=actor, key=idempotency_key)
        existing = session.get(Alert, alert_id)
        if existing is not None:
            return _replay(session, existing, alert_in, places=places, now=now)
    codes, texts = validate_alert(alert_in, places=places, now=now)
    alert = Alert(id=alert_id, created_by=actor, created_at=now, severity=alert_in.severity,
                  neighbourhood_codes=json.dumps(codes), texts=json.dumps(texts, ensure_ascii=False),
                  expires_at=alert_in.expires_at)
    items = []
    for reporter, followed in subscribers_by_reporter(session=session, codes=codes):
        _, text = pick_text(texts, reporter.locale, default_locale)
        # the frame (severity, place) is always in the citizen's language, even when the text is not
        message = compose(reporter.locale, alert.severity, text, [places[code] for code in followed])
        items.append(OutgoingItem.to(reporter, dedupe_key=f"alert:{alert.id}:{reporter.id}", kind=OUTBOX_ALERT,
                                     text=message, urgent=alert.severity == "danger", alert_id=alert.id))
    try:
        session.add(alert)
        session.flush()
        record_audit(session=session, actor=actor, action="alert.created", subject_type="alert",
                     subject_id=str(alert.id), detail={"severity": alert.severity, "neighbourhoods": codes,
                                                       "languages": sorted(texts), "recipients": len(items),
                                                       "expires_at": alert.expires_at})
    except IntegrityError:
        # The same Idempotency-Key raced us; the other request stored the alert.
        session.rollback()
        existing = session.get(Alert, alert_id) if idempotency_key is not None else None
        if existing is None:
            raise
        return _replay(session, existing, alert_in, places=places, now=now)
    except BaseException:
        session.rollback()
        raise
    added = enqueue(session=session, items=items)  # commits the alert, its audit entry and the rows
    return CreatedAlert(alert=alert, recipients=added, report=delivery_report(session=session, alert_id=alert.id))


def _replay(session: Session, existing: Alert, alert_in: AlertIn, *, places: Mapping[str, str],
            now: datetime) -> CreatedAlert:
    try:
        codes, texts = validate_alert(alert_in, places=places, now=existing.created_at)
    except InvalidAlert:
        codes, texts = [], {}
    if not _same_alert(existing, codes, texts, alert_in):
        raise IdempotencyConflict("this Idempotency-Key was already used for a different alert")
    return CreatedAlert(alert=existing, recipients=0, replayed=True,
                        report=delivery_report(session=session, alert_id=existing.id))


# --------------------------------------------------------------------------- reading


def get_alert(*, session: Session, alert_id: uuid.UUID) -> Alert | None:
    return session.get(Alert, alert_id)


def delivery_reports(*, session: Session, alert_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, DeliveryReport]:
    """Outbox rows of each alert by status (``sending`` counts as pending)."""
    counts: dict[uuid.UUID, dict[str, int]] = {alert_id: {} for alert_id in alert_ids}
    if alert_ids:
        rows = session.exec(
            select(OutboxMessage.alert_id, OutboxMessage.status, func.count())
            .where(col(OutboxMessage.alert_id).in_(list(alert_ids)))
            .group_by(col(OutboxMessage.alert_id), col(OutboxMessage.status))
        ).all()
        for alert_id, status, n in rows:
            if alert_id is not None:
                bucket = counts.setdefault(alert_id, {})
                key = "pending" if status == "sending" else status
                bucket[key] = bucket.get(key, 0) + int(n)
    return {alert_id: DeliveryReport(**{k: v for k, v in c.items() if k in DeliveryReport.__dataclass_fields__})
            for alert_id, c in counts.items()}


def delivery_report(*, session: Session, alert_id: uuid.UUID) -> DeliveryReport:
    return delivery_reports(session=session, alert_ids=[alert_id])[alert_id]


def alert_with_report(*, session: Session, alert_id: uuid.UUID) -> tuple[Alert, DeliveryReport] | None:
    """The alert and how far its delivery got, or None when there is no such alert."""
    alert = get_alert(session=session, alert_id=alert_id)
    return None if alert is None else (alert, delivery_report(session=session, alert_id=alert_id))


def list_alerts(
    *, session: Session, limit: int = 50, offset: int = 0
) -> tuple[list[tuple[Alert, DeliveryReport]], int]:
    """Newest first, each with its delivery report; and how many alerts there are."""
    total = int(session.exec(select(func.count()).select_from(Alert)).one())
    alerts = list(session.exec(
        select(Alert).order_by(col(Alert.created_at).desc(), col(Alert.id)).limit(limit).offset(offset)).all())
    reports = delivery_reports(session=session, alert_ids=[alert.id for alert in alerts])
    return [(alert, reports[alert.id]) for alert in alerts], total


# --------------------------------------------------------------------------- cancelling and expiring


def _withdraw_pending(session: Session, alert_ids: Sequence[uuid.UUID]) -> int:
    """Pending rows of these alerts become ``cancelled``; rows already being sent are left alone."""
    if not alert_ids:
        return 0
    result = session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.alert_id).in_(list(alert_ids)), col(OutboxMessage.status) == "pending")
        .values(status="cancelled", lease_owner=None, lease_until=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def cancel_alert(
    *, session: Session, alert_id: uuid.UUID, actor: str, any_author: bool = False
) -> tuple[Alert, int] | None:
    """Cancel the alert and withdraw its unsent messages; (alert, messages withdrawn), or None.

    Only its author may, unless ``any_author`` (admins): raises ``NotTheAuthor`` otherwise.
    Cancelling twice is harmless: the second call withdraws nothing and keeps the first time.
    """
    with atomic(session):
        alert = session.get(Alert, alert_id, with_for_update=True)
        if alert is None:
            return None
        if not any_author and alert.created_by != actor:
            raise NotTheAuthor(f"only {alert.created_by} or an admin may cancel this alert")
        if alert.cancelled_at is None:
            alert.cancelled_at = utcnow()
            session.add(alert)
        withdrawn = _withdraw_pending(session, [alert.id])
        record_audit(session=session, actor=actor, action="alert.cancelled", subject_type="alert",
                     subject_id=str(alert.id), detail={"withdrawn": withdrawn})
    return alert, withdrawn


def cancel_alert_with_report(
    *, session: Session, alert_id: uuid.UUID, actor: str, any_author: bool = False
) -> tuple[Alert, int, DeliveryReport] | None:
    """``cancel_alert``, with the delivery report as it stands after the cancellation."""
    done = cancel_alert(session=session, alert_id=alert_id, actor=actor, any_author=any_author)
    if done is None:
        return None
    return done[0], done[1], delivery_report(session=session, alert_id=alert_id)


def expire_due_alerts(*, session: Session, now: datetime | None = None) -> int:
    """Withdraw the unsent messages of every alert whose expiry has passed; commit; how many.

    For the scheduler (run it every minute or so). The outbox worker should also, when it
    claims rows, mark ``cancelled`` instead of sending those whose alert is in
    ``withdrawn_alert_ids`` (expired or cancelled), so nothing stale goes out between two runs.
    """
    now = now or utcnow()
    with atomic(session):
        due = list(session.exec(
            select(Alert.id)
            .join(OutboxMessage, col(OutboxMessage.alert_id) == col(Alert.id))
            .where(col(Alert.expires_at).is_not(None), col(Alert.expires_at) <= now,
                   col(OutboxMessage.status) == "pending")
            .distinct()
        ).all())
        withdrawn = _withdraw_pending(session, due)
        for alert_id in due:
            record_audit(session=session, actor="system", action="alert.expired", subject_type="alert",
                         subject_id=str(alert_id), detail={})
    return withdrawn


def withdrawn_alert_ids(*, session: Session, alert_ids: Sequence[uuid.UUID],
                        now: datetime | None = None) -> set[uuid.UUID]:
    """Which of these alerts are cancelled or expired (one query, for the worker's claimed batch)."""
    if not alert_ids:
        return set()
    now = now or utcnow()
    rows = session.exec(
        select(Alert.id).where(
            col(Alert.id).in_(list(set(alert_ids))),
            or_(col(Alert.cancelled_at).is_not(None),
                and_(col(Alert.expires_at).is_not(None), col(Alert.expires_at) <= now)),
        )
    ).all()
    return set(rows)
