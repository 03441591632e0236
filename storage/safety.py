"""What the after-resolution surveys say: how safe citizens feel in their neighbourhood (1 to 5)
over time, how satisfied they were, and how often their problem was solved."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from storage.models import SurveyResponse
from storage.stats import iso_week

UNKNOWN_NEIGHBOURHOOD = "unknown"


@dataclass(frozen=True)
class SafetyPoint:
    neighbourhood: str  # a code, or "unknown"
    period: str  # "2026-W48" or "2026-11"
    mean: float
    answers: int


@dataclass(frozen=True)
class SurveySummary:
    answered: int
    mean_satisfaction: float | None
    satisfaction_answers: int
    solved_rate: float | None  # share of "yes" among those who answered the question
    solved_answers: int
    mean_safety: float | None
    safety_answers: int


def _answered(session: Session, since: datetime | None) -> list[SurveyResponse]:
    query = select(SurveyResponse).where(col(SurveyResponse.answered_at).is_not(None))
    if since is not None:
        query = query.where(col(SurveyResponse.answered_at) >= since)
    return list(session.exec(query).all())


def _period(moment: datetime, zone: ZoneInfo, by: str) -> str:
    return iso_week(moment, zone) if by == "week" else moment.astimezone(zone).strftime("%Y-%m")


def safety_over_time(*, session: Session, zone: ZoneInfo, since: datetime | None = None,
                     by: str = "week") -> list[SafetyPoint]:
    """Mean perceived safety per neighbourhood and ISO week (``by="week"``) or month of the answer."""
    if by not in ("week", "month"):
        raise ValueError("by must be week or month")
    scores: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
    for response in _answered(session, since):
        if response.safety is not None and response.answered_at is not None:
            key = (response.neighbourhood_code or UNKNOWN_NEIGHBOURHOOD, _period(response.answered_at, zone, by))
            scores[key].append(response.safety)
    return [SafetyPoint(neighbourhood=code, period=period, mean=round(sum(v) / len(v), 2), answers=len(v))
            for (code, period), v in sorted(scores.items(), key=lambda item: (item[0][1], item[0][0]))]


def survey_summary(*, session: Session, since: datetime | None = None) -> SurveySummary:
    responses = _answered(session, since)
    satisfaction = [r.satisfaction for r in responses if r.satisfaction is not None]
    solved = [r.solved for r in responses if r.solved is not None]
    safety = [r.safety for r in responses if r.safety is not None]

    def mean(values: list[int]) -> float | None:
        return round(sum(values) / len(values), 2) if values else None

    return SurveySummary(
        answered=len(responses),
        mean_satisfaction=mean(satisfaction), satisfaction_answers=len(satisfaction),
        solved_rate=round(sum(1 for s in solved if s) / len(solved), 3) if solved else None,
        solved_answers=len(solved),
        mean_safety=mean(safety), safety_answers=len(safety),
    )
