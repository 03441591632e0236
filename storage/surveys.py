"""The after-resolution survey of a case: was it solved, satisfaction 1-5, how safe the citizen
feels in their neighbourhood 1-5, an optional comment.

Answers are stored one by one as the citizen gives them, on the case's ``SurveyResponse``;
the comment (or skipping it) completes the survey: ``answered_at`` is set and a
``survey_answered`` event is added to the case. Only the citizen who filed the case can answer,
and only once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlmodel import Session, col, select

from storage.cases import get_case_for_sender
from storage.errors import StorageError
from storage.models import (
    ACTOR_CITIZEN,
    DESCRIPTION_MAX,
    EVENT_SURVEY_ANSWERED,
    Case,
    CaseEvent,
    Reporter,
    SurveyResponse,
    utcnow,
)

SOLVED: Final = "solved"
SATISFACTION: Final = "satisfaction"
SAFETY: Final = "safety"
COMMENT: Final = "comment"
QUESTIONS: Final = (SOLVED, SATISFACTION, SAFETY, COMMENT)
# A survey is offered on cases in these states (a late answer after closing is still welcome).
SURVEYED_STATUSES: Final = ("resolved", "closed")


class SurveyNotFound(StorageError):
    """No survey for this reference that this citizen may answer."""


class SurveyAlreadyAnswered(StorageError):
    """The survey was completed before."""


def open_survey(*, session: Session, case: Case) -> SurveyResponse:
    """The case's survey, created (with the case's neighbourhood) if it did not exist yet."""
    survey = session.exec(select(SurveyResponse).where(SurveyResponse.case_id == case.id)).first()
    if survey is None:
        survey = SurveyResponse(case_id=case.id, neighbourhood_code=case.neighbourhood_code)
        session.add(survey)
        session.commit()
        session.refresh(survey)
    return survey


def survey_for_sender(*, session: Session, ref: str, sender_id: str) -> SurveyResponse:
    """The survey of the sender's own case ``ref``; raises SurveyNotFound otherwise."""
    case = get_case_for_sender(session=session, ref=ref, sender_id=sender_id)
    if case is None:
        raise SurveyNotFound(ref)
    survey = session.exec(select(SurveyResponse).where(SurveyResponse.case_id == case.id)).first()
    if survey is None:
        if case.status not in SURVEYED_STATUSES:
            raise SurveyNotFound(ref)
        survey = open_survey(session=session, case=case)
    return survey


def awaiting_first_answer(*, session: Session, sender_id: str, sent_after: datetime) -> str | None:
    """The reference of the sender's latest survey sent after ``sent_after`` whose first
    question (was it solved?) has no answer yet, or None."""
    statement = (
        select(Case.ref)
        .join(SurveyResponse, col(SurveyResponse.case_id) == col(Case.id))
        .join(Reporter, col(Case.reporter_id) == col(Reporter.id))
        .where(
            Reporter.sender_id == sender_id,
            col(SurveyResponse.sent_at) > sent_after,
            col(SurveyResponse.solved).is_(None),
            col(SurveyResponse.answered_at).is_(None),
        )
        .order_by(col(SurveyResponse.sent_at).desc())
    )
    return session.exec(statement).first()


def _check(question: str, value: bool | int | str | None) -> None:
    if question == SOLVED and not isinstance(value, bool):
        raise ValueError("solved must be True or False")
    if question in (SATISFACTION, SAFETY) and not (
        isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5
    ):
        raise ValueError(f"{question} must be a whole number from 1 to 5")
    if question == COMMENT and value is not None and (not isinstance(value, str) or len(value) > DESCRIPTION_MAX):
        raise ValueError(f"comment must be text of at most {DESCRIPTION_MAX} characters")
    if question not in QUESTIONS:
        raise ValueError(f"unknown survey question {question!r}")


def record_survey_answer(
    *, session: Session, ref: str, sender_id: str, question: str, value: bool | int | str | None
) -> SurveyResponse:
    """Store one answer. The comment (``None`` when skipped) completes the survey.

    Raises ValueError for an invalid answer, SurveyNotFound when the case is not the sender's,
    SurveyAlreadyAnswered when the survey was completed before.
    """
    _check(question, value)
    survey = survey_for_sender(session=session, ref=ref, sender_id=sender_id)
    if survey.answered_at is not None:
        raise SurveyAlreadyAnswered(ref)
    if question == COMMENT:
        survey.comment = value.strip() or None if isinstance(value, str) else None
        survey.answered_at = utcnow()
        session.add(
            CaseEvent(
                case_id=survey.case_id,
                at=survey.answered_at,
                kind=EVENT_SURVEY_ANSWERED,
                actor=ACTOR_CITIZEN,
                text=summary(survey),  # no personal data: the comment stays on the survey only
            )
        )
    else:
        setattr(survey, question, value)
    session.add(survey)
    session.commit()
    session.refresh(survey)
    return survey


def summary(survey: SurveyResponse) -> str:
    """The answers in a line for the case history (never the comment)."""
    solved = {True: "yes", False: "no", None: "-"}[survey.solved]
    return (
        f"solved: {solved}; satisfaction: {survey.satisfaction or '-'}/5; "
        f"safety: {survey.safety or '-'}/5; comment: {'yes' if survey.comment else 'no'}"
    )
