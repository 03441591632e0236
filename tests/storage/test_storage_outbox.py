"""storage.outbox, the worker's side, on SQLite and PostgreSQL: claiming with a lease (and never
twice), recovering rows of a dead worker, retries, failures, unreachable citizens, quiet-hours
deferral and the delivery report of an alert."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from storage import outbox as store
from storage.alerts import delivery_report
from storage.models import Alert, OutboxMessage, Reporter

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def add_reporters(session: Session, count: int, channel: str = "telegram") -> list[Reporter]:
    prefix = "telegram" if channel == "telegram" else "web"
    reporters = [Reporter(channel=channel, sender_id=f"{prefix}:{1000 + i}", locale="es") for i in range(count)]
    session.add_all(reporters)
    session.commit()
    return reporters


def add_alert(session: Session) -> Alert:
    alert = Alert(created_by="community1", neighbourhood_codes='["01-01"]', texts='{"es": "Corte de agua"}')
    session.add(alert)
    session.commit()
    return alert


def fan_out(session: Session, reporters: list[Reporter], alert: Alert, **kwargs: object) -> int:
    return store.enqueue(session=session, items=[
        store.OutgoingItem.to(r, dedupe_key=f"alert:{alert.id}:{r.id}", kind="alert", text="Corte de agua",
                              alert_id=alert.id, not_before=NOW - timedelta(seconds=1), **kwargs)  # type: ignore[arg-type]
        for r in reporters
    ])


def claim(session: Session, owner: str = "w1", limit: int = 100, now: datetime = NOW, **kwargs: object
          ) -> list[store.ClaimedMessage]:
    return store.claim_due(session=session, channel="telegram", owner=owner, lease_seconds=30, limit=limit,
                           now=now, **kwargs)  # type: ignore[arg-type]


def statuses(new_session: Callable[[], Session]) -> dict[str, int]:
    with new_session() as session:
        return store.counts_by_status(session=session)


def test_claim_takes_due_rows_once_with_a_lease(session: Session, new_session: Callable[[], Session]) -> None:
    reporters = add_reporters(session, 5)
    alert = add_alert(session)
    assert fan_out(session, reporters, alert) == 5
    assert fan_out(session, reporters, alert) == 0  # idempotent
    later = store.enqueue(session=session, items=[store.OutgoingItem.to(
        reporters[0], dedupe_key="later", kind="status", text="later", not_before=NOW + timedelta(hours=1))])
    assert later == 1

    first = claim(session, limit=3)
    assert len(first) == 3
    assert {row.sender_id for row in first} <= {r.sender_id for r in reporters}
    assert first[0].text == "Corte de agua" and first[0].kind == "alert" and first[0].attempts == 1
    second = claim(new_session(), owner="w2")
    assert len(second) == 2  # the rest; the future row is not due
    assert not {row.id for row in first} & {row.id for row in second}
    assert claim(session, owner="w3") == []
    with new_session() as check:
        row = check.get(OutboxMessage, first[0].id)
        assert row is not None
        assert (row.status, row.lease_owner, row.lease_until) == ("sending", "w1", NOW + timedelta(seconds=30))


def test_rows_of_a_dead_worker_are_claimed_again_after_the_lease(session: Session) -> None:
    reporters = add_reporters(session, 2)
    fan_out(session, reporters, add_alert(session))
    taken = claim(session, owner="dead")
    assert len(taken) == 2
    assert claim(session, owner="alive", now=NOW + timedelta(seconds=29)) == []
    again = claim(session, owner="alive", now=NOW + timedelta(seconds=31))
    assert sorted(row.id for row in again) == sorted(row.id for row in taken)
    assert again[0].attempts == 2  # the dead worker's claim counts as an attempt
    # the dead worker, if it was only slow, can no longer renew (and send) them
    assert not store.renew_lease(session=session, message_id=taken[0].id, owner="dead", lease_seconds=30)
    assert store.renew_lease(session=session, message_id=taken[0].id, owner="alive", lease_seconds=30)


def test_sent_retry_failed(session: Session, new_session: Callable[[], Session]) -> None:
    reporters = add_reporters(session, 3)
    alert = add_alert(session)
    fan_out(session, reporters, alert)
    a, b, c = claim(session)
    store.mark_sent(session=session, message_id=a.id, now=NOW)
    assert store.retry_later(session=session, message_id=b.id, owner="w1", not_before=NOW + timedelta(seconds=5),
                             error="NetworkError: Bad Gateway")
    assert store.mark_failed(session=session, message_id=c.id, owner="w1", error="400 Bad Request: chat not found")
    with new_session() as check:
        rows = {row.id: row for row in check.exec(select(OutboxMessage)).all()}
    assert (rows[a.id].status, rows[a.id].sent_at, rows[a.id].attempts) == ("sent", NOW, 1)
    assert (rows[b.id].status, rows[b.id].attempts, rows[b.id].last_error) == ("pending", 1, "NetworkError: Bad Gateway")
    assert rows[c.id].status == "failed" and rows[c.id].last_error == "400 Bad Request: chat not found"
    assert delivery_report(session=session, alert_id=alert.id).as_dict() == {
        "sent": 1, "pending": 1, "failed": 1, "unreachable": 0, "cancelled": 0,
        "total": 3}
    assert claim(session, now=NOW + timedelta(seconds=4)) == []
    retried = claim(session, now=NOW + timedelta(seconds=5))
    assert [row.id for row in retried] == [b.id] and retried[0].attempts == 2
    # flood control gives the attempt back
    store.retry_later(session=session, message_id=b.id, owner="w1", not_before=NOW, count_attempt=False)
    with new_session() as check:
        row = check.get(OutboxMessage, b.id)
        assert row is not None and row.attempts == 1


def test_unreachable_citizen_gets_nothing_more(session: Session, new_session: Callable[[], Session]) -> None:
    reporters = add_reporters(session, 2)
    alert = add_alert(session)
    fan_out(session, reporters, alert)
    store.enqueue(session=session, items=[store.OutgoingItem.to(
        reporters[0], dedupe_key="status-1", kind="status", text="now in progress", not_before=NOW)])
    rows = claim(session, limit=1)
    assert rows[0].reporter_id == reporters[0].id  # oldest first: the alert
    assert store.mark_unreachable(session=session, message_id=rows[0].id, owner="w1", error="403 blocked") == 2
    with new_session() as check:
        reporter = check.get(Reporter, reporters[0].id)
        assert reporter is not None and reporter.unreachable
        mine = check.exec(select(OutboxMessage).where(OutboxMessage.reporter_id == reporters[0].id)).all()
        assert {row.status for row in mine} == {"unreachable"}
    # a row enqueued later for them is marked at claim time, never handed to a worker
    store.enqueue(session=session, items=[store.OutgoingItem.to(
        reporters[0], dedupe_key="status-2", kind="status", text="resolved", not_before=NOW)])
    left = claim(session)
    assert [row.reporter_id for row in left] == [reporters[1].id]
    assert delivery_report(session=session, alert_id=alert.id).as_dict() == {
        "sent": 0, "pending": 1, "failed": 0, "unreachable": 1, "cancelled": 0,
        "total": 2}
    assert statuses(new_session)["unreachable"] == 3


def test_quiet_hours_defer_non_urgent_rows_only(session: Session, new_session: Callable[[], Session]) -> None:
    reporters = add_reporters(session, 2)
    alert = add_alert(session)
    fan_out(session, reporters[:1], alert)
    store.enqueue(session=session, items=[store.OutgoingItem.to(
        reporters[1], dedupe_key="urgent", kind="alert", text="¡Evacuad!", urgent=True, not_before=NOW)])
    morning = NOW + timedelta(hours=8)
    assert store.defer_non_urgent(session=session, channel="telegram", until=morning) == 1
    assert store.defer_non_urgent(session=session, channel="web", until=morning) == 0
    urgent = claim(session, urgent_only=True)
    assert [row.text for row in urgent] == ["¡Evacuad!"]
    store.mark_sent(session=session, message_id=urgent[0].id)
    assert claim(session, now=morning - timedelta(seconds=1)) == []
    assert [row.text for row in claim(session, now=morning)] == ["Corte de agua"]


def test_claim_for_some_recipients_only(session: Session) -> None:
    reporters = add_reporters(session, 3, channel="web")
    fan_out(session, reporters, add_alert(session))
    none = store.claim_due(session=session, channel="web", owner="w", lease_seconds=30, limit=10, now=NOW,
                           sender_ids=[])
    assert none == []
    rows = store.claim_due(session=session, channel="web", owner="w", lease_seconds=30, limit=10, now=NOW,
                           sender_ids=[reporters[1].sender_id, "web:nobody"])
    assert [row.sender_id for row in rows] == [reporters[1].sender_id]
    assert claim(session) == []  # another channel


def test_release_gives_back_untried_rows(session: Session) -> None:
    reporters = add_reporters(session, 3)
    fan_out(session, reporters, add_alert(session))
    rows = claim(session)
    assert store.release(session=session, message_ids=[row.id for row in rows], owner="other") == 0
    assert store.release(session=session, message_ids=[row.id for row in rows], owner="w1") == 3
    again = claim(session, owner="w2")
    assert len(again) == 3 and {row.attempts for row in again} == {1}  # the untried claim is given back


def test_concurrent_claims_never_share_a_row(engine: Engine) -> None:
    with Session(engine) as session:
        reporters = add_reporters(session, 200)
        fan_out(session, reporters, add_alert(session))
    taken: dict[str, list[uuid.UUID]] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        mine: list[uuid.UUID] = []
        try:
            with Session(engine) as own:
                while rows := store.claim_due(session=own, channel="telegram", owner=name, lease_seconds=30,
                                              limit=7, now=NOW):
                    mine.extend(row.id for row in rows)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        taken[name] = mine

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    everything = [row_id for rows in taken.values() for row_id in rows]
    assert len(everything) == 200 and len(set(everything)) == 200


def test_rows_of_a_cancelled_or_expired_alert_are_not_handed_out(session: Session) -> None:
    reporters = add_reporters(session, 3)
    cancelled, expired, live = add_alert(session), add_alert(session), add_alert(session)
    fan_out(session, reporters[:1], cancelled)
    fan_out(session, reporters[1:2], expired)
    fan_out(session, reporters[2:], live)
    for alert, field, value in ((cancelled, "cancelled_at", NOW), (expired, "expires_at", NOW - timedelta(minutes=1))):
        stored = session.get(Alert, alert.id)
        assert stored is not None
        setattr(stored, field, value)
        session.add(stored)
    session.commit()
    rows = claim(session)
    assert [row.alert_id for row in rows] == [live.id]
    for alert in (cancelled, expired):
        assert delivery_report(session=session, alert_id=alert.id).cancelled == 1
