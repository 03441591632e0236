"""Citizens' neighbourhood-alert subscriptions (one row per reporter and neighbourhood).

A citizen who has never filed a report gets a ``Reporter`` row when they first subscribe, so
that alerts can reach them on their channel and in their language; subscribing again refreshes
that language. Subscriptions go with the reporter on erasure (``ondelete=CASCADE``).
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.db import atomic
from storage.models import Reporter, Subscription
from storage.reporters import get_or_create_reporter


def _reporter_id(session: Session, sender_id: str) -> uuid.UUID | None:
    return session.exec(select(Reporter.id).where(Reporter.sender_id == sender_id)).first()


def subscribe(
    *, session: Session, sender_id: str, channel: str, locale: str, neighbourhood_code: str
) -> bool:
    """Subscribe the sender to one neighbourhood; False when they already were."""
    reporter = get_or_create_reporter(session=session, sender_id=sender_id, channel=channel, locale=locale)
    exists = session.exec(
        select(Subscription.id).where(
            Subscription.reporter_id == reporter.id, Subscription.neighbourhood_code == neighbourhood_code
        )
    ).first()
    if exists is not None:
        return False
    try:
        with atomic(session):
            session.add(Subscription(reporter_id=reporter.id, neighbourhood_code=neighbourhood_code))
    except IntegrityError:  # the same subscription added concurrently (double press)
        return False
    return True


def unsubscribe(*, session: Session, sender_id: str, neighbourhood_code: str) -> bool:
    """Remove one subscription; False when there was none."""
    reporter_id = _reporter_id(session, sender_id)
    if reporter_id is None:
        return False
    result = session.execute(
        delete(Subscription).where(
            col(Subscription.reporter_id) == reporter_id,
            col(Subscription.neighbourhood_code) == neighbourhood_code,
        )
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def unsubscribe_all(*, session: Session, sender_id: str) -> int:
    """Remove every subscription of the sender; how many there were."""
    reporter_id = _reporter_id(session, sender_id)
    if reporter_id is None:
        return 0
    result = session.execute(delete(Subscription).where(col(Subscription.reporter_id) == reporter_id))
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def list_subscriptions(*, session: Session, sender_id: str) -> list[str]:
    """The sender's neighbourhood codes, sorted."""
    statement = (
        select(Subscription.neighbourhood_code)
        .join(Reporter, col(Reporter.id) == col(Subscription.reporter_id))
        .where(Reporter.sender_id == sender_id)
        .order_by(col(Subscription.neighbourhood_code))
    )
    return list(session.exec(statement).all())
