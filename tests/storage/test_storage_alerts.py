"""storage.alerts on SQLite and PostgreSQL: validation, the fan-out (once per subscriber, in
their language), idempotent creation, the delivery report, cancelling and expiry."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from bot.alerts import AlertComposer
from common.i18n import Catalogs
from common.settings import PROJECT_ROOT
from storage import alerts
from storage.alerts import AlertIn, IdempotencyConflict, InvalidAlert
from storage.models import Alert, AuditLog, OutboxMessage, Reporter, Subscription, utcnow
from storage.outbox import decode_payload

PLACES = {"01-01": "el Raval", "01-02": "el Barri Gòtic", "06-31": "la Vila de Gràcia"}


@pytest.fixture(scope="module")
def compose() -> AlertComposer:
    return AlertComposer(Catalogs.load(PROJECT_ROOT / "locales", "en"))


def citizen(session: Session, *codes: str, locale: str = "es", channel: str = "telegram", **extra: object) -> Reporter:
    reporter = Reporter(channel=channel, sender_id=f"{channel}:{uuid.uuid4().hex[:10]}", locale=locale, **extra)
    session.add(reporter)
    session.flush()
    for code in codes:
        session.add(Subscription(reporter_id=reporter.id, neighbourhood_code=code))
    session.commit()
    return reporter


def rows(session: Session, alert_id: uuid.UUID) -> list[OutboxMessage]:
    return list(session.exec(select(OutboxMessage).where(OutboxMessage.alert_id == alert_id)).all())


def make(session: Session, compose: AlertComposer, *, codes: tuple[str, ...] = ("01-01", "01-02"),
         severity: str = "warning", texts: dict[str, str] | None = None, **kwargs: object) -> alerts.CreatedAlert:
    alert_in = AlertIn(neighbourhood_codes=codes, severity=severity,
                       texts=texts if texts is not None else {"en": "Pickpockets on the metro.",
                                                              "es": "Carteristas en el metro."},
                       expires_at=kwargs.pop("expires_at", None))  # type: ignore[arg-type]
    return alerts.create_alert(session=session, alert_in=alert_in, actor="community1", places=PLACES,
                               compose=compose, **kwargs)  # type: ignore[arg-type]


def test_one_message_per_reachable_subscriber_in_their_language(session: Session, compose: AlertComposer,
                                                                 new_session: Callable[[], Session]) -> None:
    both = citizen(session, "01-01", "01-02", locale="es")  # follows two of the alert's neighbourhoods
    catalan = citizen(session, "01-02", locale="ca", channel="web")  # no Catalan text: default (English)
    english = citizen(session, "01-01", locale="en")
    elsewhere = citizen(session, "06-31")
    blocked = citizen(session, "01-01", unreachable=True)
    erased = citizen(session, "01-01", erased_at=utcnow())
    open311 = citizen(session, "01-01", channel="open311")

    created = make(session, compose)
    assert created.recipients == 3 and not created.replayed
    assert created.report.as_dict() == {"sent": 0, "pending": 3, "failed": 0, "unreachable": 0, "cancelled": 0,
                                        "total": 3}
    queued = {row.reporter_id: row for row in rows(new_session(), created.alert.id)}
    assert set(queued) == {both.id, catalan.id, english.id}
    assert not {elsewhere.id, blocked.id, erased.id, open311.id} & set(queued)
    for reporter_id, row in queued.items():
        assert row.dedupe_key == f"alert:{created.alert.id}:{reporter_id}"
        assert row.kind == "alert" and row.status == "pending" and row.urgent is False
    assert queued[catalan.id].channel == "web"
    assert decode_payload(queued[both.id].payload) == (
        "⚠️ Precaución · Aviso para el Raval, el Barri Gòtic\n\nCarteristas en el metro.", [])
    assert decode_payload(queued[catalan.id].payload)[0] == (
        "⚠️ Precaució · Avís per a el Barri Gòtic\n\nPickpockets on the metro.")
    assert decode_payload(queued[english.id].payload)[0] == "⚠️ Warning · Alert for el Raval\n\nPickpockets on the metro."

    stored = new_session().get(Alert, created.alert.id)
    assert json.loads(stored.neighbourhood_codes) == ["01-01", "01-02"]
    assert json.loads(stored.texts) == {"en": "Pickpockets on the metro.", "es": "Carteristas en el metro."}
    audit = new_session().exec(select(AuditLog).where(AuditLog.action == "alert.created")).one()
    assert audit.actor == "community1" and audit.subject_id == str(created.alert.id)
    assert "metro" not in (audit.detail or "") and json.loads(audit.detail)["recipients"] == 3


def test_locale_falls_back_to_the_default_then_any_text(session: Session, compose: AlertComposer,
                                                        new_session: Callable[[], Session]) -> None:
    english = citizen(session, "01-01", locale="en")
    catalan = citizen(session, "01-01", locale="ca")
    created = make(session, compose, codes=("01-01",), severity="danger", texts={"es": "Incendio en la calle Hospital."},
                   default_locale="en")
    queued = {row.reporter_id: row for row in rows(new_session(), created.alert.id)}
    assert decode_payload(queued[english.id].payload)[0] == "🚨 Danger · Alert for el Raval\n\nIncendio en la calle Hospital."
    assert decode_payload(queued[catalan.id].payload)[0] == "🚨 Perill · Avís per a el Raval\n\nIncendio en la calle Hospital."
    assert all(row.urgent for row in queued.values())  # danger ignores quiet hours
    assert alerts.pick_text({"en": "a", "ca": "c"}, "ca", "es") == ("ca", "c")
    assert alerts.pick_text({"en": "a", "ca": "c"}, "es", "en") == ("en", "a")
    assert alerts.pick_text({"ca": "c"}, "es", "en") == ("ca", "c")


@pytest.mark.parametrize(("kwargs", "field", "problem"), [
    ({"codes": ()}, "neighbourhoods", "at least one"),
    ({"codes": ("01-01", "99-99")}, "neighbourhoods", "99-99"),
    ({"severity": "panic"}, "severity", "info, warning, danger"),
    ({"texts": {}}, "texts", "at least one language"),
    ({"texts": {"en": "   "}}, "texts", "at least one language"),
    ({"texts": {"de": "Achtung"}}, "texts.de", "en, es, ca"),
    ({"texts": {"en": "x" * 1001}}, "texts.en", "at most 1000"),
    ({"expires_at": utcnow() - timedelta(minutes=1)}, "expires_at", "future"),
])
def test_invalid_alerts_are_refused_and_nothing_is_stored(session: Session, compose: AlertComposer, kwargs: dict,
                                                          field: str, problem: str,
                                                          new_session: Callable[[], Session]) -> None:
    citizen(session, "01-01")
    with pytest.raises(InvalidAlert) as refused:
        make(session, compose, **kwargs)
    assert any(name == field and problem in text for name, text in refused.value.problems), refused.value.problems
    check = new_session()
    assert check.exec(select(Alert)).all() == [] and check.exec(select(OutboxMessage)).all() == []
    assert check.exec(select(AuditLog)).all() == []


def test_a_retried_create_with_the_same_key_fans_out_once(session: Session, compose: AlertComposer,
                                                          new_session: Callable[[], Session]) -> None:
    for _ in range(3):
        citizen(session, "01-01")
    first = make(session, compose, idempotency_key="req-1")
    again = make(session, compose, idempotency_key="req-1")
    assert first.recipients == 3 and again.recipients == 0 and again.replayed
    assert again.alert.id == first.alert.id and again.report.total == 3
    check = new_session()
    assert len(check.exec(select(Alert)).all()) == 1 and len(check.exec(select(OutboxMessage)).all()) == 3
    with pytest.raises(IdempotencyConflict):
        make(session, compose, idempotency_key="req-1", severity="danger")
    # the same key from another user is another alert; no key at all is always a new alert
    other = alerts.create_alert(session=session, actor="admin1", places=PLACES, compose=compose,
                                idempotency_key="req-1",
                                alert_in=AlertIn(neighbourhood_codes=["01-01"], severity="info", texts={"en": "x"}))
    assert other.alert.id != first.alert.id and other.recipients == 3
    # a second fan-out of the same alert (a crashed job run again) adds nobody
    items = [alerts.OutgoingItem(reporter_id=row.reporter_id, channel=row.channel, dedupe_key=row.dedupe_key,
                                 kind="alert", text="again", alert_id=first.alert.id)
             for row in rows(check, first.alert.id)]
    assert alerts.enqueue(session=session, items=items) == 0


def test_delivery_report_cancel_and_expiry(session: Session, compose: AlertComposer,
                                           new_session: Callable[[], Session]) -> None:
    people = [citizen(session, "01-01") for _ in range(6)]
    created = make(session, compose, codes=("01-01",), expires_at=utcnow() + timedelta(hours=1))
    statuses = ["sent", "sent", "failed", "unreachable", "sending", "pending"]
    for person, status in zip(people, statuses, strict=True):
        session.execute(update(OutboxMessage).where(OutboxMessage.reporter_id == person.id).values(status=status))
    session.commit()
    report = alerts.delivery_report(session=session, alert_id=created.alert.id)
    assert report.as_dict() == {"sent": 2, "pending": 2, "failed": 1, "unreachable": 1, "cancelled": 0, "total": 6}
    listed, total = alerts.list_alerts(session=session)
    assert total == 1 and listed[0][0].id == created.alert.id and listed[0][1] == report

    with pytest.raises(alerts.NotTheAuthor):  # only its author, or an admin (any_author)
        alerts.cancel_alert(session=session, alert_id=created.alert.id, actor="community2")
    assert alerts.alert_state(alerts.get_alert(session=new_session(), alert_id=created.alert.id)) == "active"
    cancelled = alerts.cancel_alert(session=session, alert_id=created.alert.id, actor="admin1", any_author=True)
    assert cancelled is not None and cancelled[1] == 1  # the pending one; the one being sent goes on
    assert alerts.alert_state(cancelled[0]) == "cancelled"
    assert alerts.delivery_report(session=new_session(), alert_id=created.alert.id).as_dict() == {
        "sent": 2, "pending": 1, "failed": 1, "unreachable": 1, "cancelled": 1, "total": 6}
    assert alerts.cancel_alert(session=session, alert_id=created.alert.id, actor="admin1", any_author=True)[1] == 0
    assert alerts.cancel_alert(session=session, alert_id=uuid.uuid4(), actor="admin1") is None
    assert alerts.withdrawn_alert_ids(session=session, alert_ids=[created.alert.id]) == {created.alert.id}

    # expiry: the scheduler withdraws what an expired alert has not sent yet
    later = make(session, compose, codes=("01-01",), expires_at=utcnow() + timedelta(minutes=5))
    assert alerts.expire_due_alerts(session=session) == 0
    assert alerts.withdrawn_alert_ids(session=session, alert_ids=[later.alert.id]) == set()
    in_an_hour = utcnow() + timedelta(hours=1)
    assert alerts.withdrawn_alert_ids(session=session, alert_ids=[later.alert.id], now=in_an_hour) == {later.alert.id}
    ids = [created.alert.id, later.alert.id, uuid.uuid4()]
    assert alerts.withdrawn_alert_ids(session=session, alert_ids=ids) == {created.alert.id}
    assert alerts.withdrawn_alert_ids(session=session, alert_ids=ids, now=in_an_hour) == set(ids[:2])
    assert alerts.expire_due_alerts(session=session, now=in_an_hour) == 6
    assert alerts.delivery_report(session=new_session(), alert_id=later.alert.id).cancelled == 6
    assert alerts.expire_due_alerts(session=session, now=in_an_hour) == 0
    actions = [a.action for a in new_session().exec(select(AuditLog).order_by(AuditLog.at)).all()]
    assert actions.count("alert.created") == 2 and actions.count("alert.cancelled") == 2
    assert actions.count("alert.expired") == 1
