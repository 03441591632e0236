"""storage.subscriptions and storage.surveys on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlmodel import Session, select

from storage import alerts, erasure, subscriptions, surveys
from storage.models import EVENT_SURVEY_ANSWERED, Case, CaseEvent, Reporter, Subscription, SurveyResponse
from tests.cases import file_case


def new_case(session: Session, sender: str, *, status: str = "resolved") -> Case:
    return file_case(session, sender, status=status, locale="es", category="noise",
                     description="Música muy alta cada noche", neighbourhood_code="06-31")


def test_subscribe_creates_the_reporter_once_and_is_idempotent(session: Session) -> None:
    assert subscriptions.subscribe(session=session, sender_id="telegram:42", channel="telegram",
                                   locale="ca", neighbourhood_code="06-31") is True
    assert subscriptions.subscribe(session=session, sender_id="telegram:42", channel="telegram",
                                   locale="es", neighbourhood_code="06-31") is False
    assert subscriptions.subscribe(session=session, sender_id="telegram:42", channel="telegram",
                                   locale="es", neighbourhood_code="01-01") is True
    reporters = session.exec(select(Reporter).where(Reporter.sender_id == "telegram:42")).all()
    assert len(reporters) == 1 and reporters[0].locale == "es"  # the latest language they used
    assert subscriptions.list_subscriptions(session=session, sender_id="telegram:42") == ["01-01", "06-31"]
    assert subscriptions.list_subscriptions(session=session, sender_id="telegram:nobody") == []


def test_unsubscribe_one_and_all(session: Session) -> None:
    for code in ("01-01", "06-31", "10-68"):
        subscriptions.subscribe(session=session, sender_id="web:a", channel="web", locale="en", neighbourhood_code=code)
    assert subscriptions.unsubscribe(session=session, sender_id="web:a", neighbourhood_code="06-31") is True
    assert subscriptions.unsubscribe(session=session, sender_id="web:a", neighbourhood_code="06-31") is False
    assert subscriptions.unsubscribe(session=session, sender_id="web:nobody", neighbourhood_code="06-31") is False
    assert subscriptions.list_subscriptions(session=session, sender_id="web:a") == ["01-01", "10-68"]
    assert subscriptions.unsubscribe_all(session=session, sender_id="web:a") == 2
    assert subscriptions.unsubscribe_all(session=session, sender_id="web:a") == 0
    assert session.exec(select(Subscription)).all() == []


def test_subscribers_are_listed_each_once(session: Session) -> None:
    subscriptions.subscribe(session=session, sender_id="web:a", channel="web", locale="en", neighbourhood_code="01-01")
    subscriptions.subscribe(session=session, sender_id="web:a", channel="web", locale="en", neighbourhood_code="01-02")
    subscriptions.subscribe(session=session, sender_id="telegram:7", channel="telegram", locale="ca",
                            neighbourhood_code="01-02")
    subscriptions.subscribe(session=session, sender_id="web:c", channel="web", locale="es", neighbourhood_code="06-31")
    found = alerts.subscribers_by_reporter(session=session, codes=["01-01", "01-02"])
    assert sorted(r.sender_id for r, _ in found) == ["telegram:7", "web:a"]
    assert alerts.subscribers_by_reporter(session=session, codes=[]) == []


def test_subscriptions_go_with_the_reporter_on_erasure(session: Session) -> None:
    subscriptions.subscribe(session=session, sender_id="web:gone", channel="web", locale="en", neighbourhood_code="01-01")
    erasure.erase_reporter(session=session, sender_id="web:gone")
    assert session.exec(select(Subscription)).all() == []


def test_a_whole_survey_is_stored_once_with_its_event(session: Session, new_session: Callable[[], Session]) -> None:
    case = new_case(session, "web:me")
    record = surveys.record_survey_answer
    record(session=session, ref=case.ref, sender_id="web:me", question="solved", value=True)
    record(session=session, ref=case.ref.replace("-", "").lower(), sender_id="web:me", question="satisfaction", value=4)
    record(session=session, ref=case.ref, sender_id="web:me", question="safety", value=2)
    done = record(session=session, ref=case.ref, sender_id="web:me", question="comment", value="  Gràcies!  ")
    assert done.answered_at is not None
    stored = new_session().exec(select(SurveyResponse).where(SurveyResponse.case_id == case.id)).one()
    assert (stored.solved, stored.satisfaction, stored.safety, stored.comment) == (True, 4, 2, "Gràcies!")
    assert stored.neighbourhood_code == "06-31"
    events = new_session().exec(
        select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.kind == EVENT_SURVEY_ANSWERED)
    ).all()
    assert len(events) == 1 and "Gràcies" not in (events[0].text or "")
    with pytest.raises(surveys.SurveyAlreadyAnswered):
        record(session=session, ref=case.ref, sender_id="web:me", question="satisfaction", value=5)
    with pytest.raises(surveys.SurveyAlreadyAnswered):
        record(session=session, ref=case.ref, sender_id="web:me", question="comment", value=None)


def test_only_the_reporter_answers_and_only_resolved_cases(session: Session) -> None:
    case = new_case(session, "web:me")
    with pytest.raises(surveys.SurveyNotFound):
        surveys.record_survey_answer(session=session, ref=case.ref, sender_id="web:other", question="solved", value=True)
    with pytest.raises(surveys.SurveyNotFound):
        surveys.record_survey_answer(session=session, ref="ZZZ-ZZZ", sender_id="web:me", question="solved", value=True)
    open_case = new_case(session, "web:me", status="new")
    with pytest.raises(surveys.SurveyNotFound):
        surveys.record_survey_answer(session=session, ref=open_case.ref, sender_id="web:me", question="solved", value=True)
    assert session.exec(select(SurveyResponse)).all() == []


@pytest.mark.parametrize(
    ("question", "value"),
    [("satisfaction", 0), ("satisfaction", 6), ("safety", True), ("solved", "yes"), ("comment", 5), ("mood", 3)],
)
def test_invalid_answers_are_refused_and_nothing_is_stored(session: Session, question: str, value: object) -> None:
    case = new_case(session, "web:me")
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the question
        surveys.record_survey_answer(session=session, ref=case.ref, sender_id="web:me", question=question, value=value)
    assert session.exec(select(SurveyResponse)).all() == []


def test_open_survey_is_idempotent(session: Session) -> None:
    case = new_case(session, "web:me")
    first = surveys.open_survey(session=session, case=case)
    assert surveys.open_survey(session=session, case=case).id == first.id
