"""What the dispatchers' dashboard reads: the queue, the live feed, the map's counts, and the
weekly figures of the stats page. ``not_located`` is the name the page gives cases without
a neighbourhood (storage keeps them under "unknown")."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case as when_then
from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.desk import CaseFilters, list_cases
from storage.models import OPEN_STATUSES, Case
from storage.safety import SafetyPoint, SurveySummary, safety_over_time, survey_summary
from storage.stats import CaseStats, case_stats, iso_week, median_hours  # the API's figures, per week

QUEUE_LIMIT = 500
FEED_LIMIT = 1000


def _urgent_first() -> list[Any]:
    rank = when_then((col(Case.priority) == "urgent", 0), (col(Case.priority) == "high", 1), else_=2)
    return [rank, col(Case.created_at).desc()]


def open_cases(*, session: Session, limit: int = QUEUE_LIMIT) -> list[Case]:
    """Cases still waiting for the desk: urgent, then high, then normal; newest first within each."""
    query = select(Case).where(col(Case.status).in_(OPEN_STATUSES)).order_by(*_urgent_first()).limit(limit)
    return list(session.exec(query).all())


def count_open(*, session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(Case).where(col(Case.status).in_(OPEN_STATUSES))).one())


def latest_change(*, session: Session) -> datetime | None:
    """When any case last changed (the live feed starts from there)."""
    return session.exec(select(func.max(col(Case.updated_at)))).one()


def changed_since(*, session: Session, since: datetime | None, limit: int = FEED_LIMIT) -> list[Case]:
    """Cases changed after ``since`` (any status: closed ones leave the queue), oldest change first."""
    query = select(Case)
    if since is not None:
        query = query.where(col(Case.updated_at) > since)
    return list(session.exec(query.order_by(col(Case.updated_at)).limit(limit)).all())


def open_by_neighbourhood(*, session: Session) -> dict[str, int]:
    rows = session.exec(
        select(Case.neighbourhood_code, func.count())
        .where(col(Case.status).in_(OPEN_STATUSES), col(Case.neighbourhood_code).is_not(None))
        .group_by(col(Case.neighbourhood_code))
    ).all()
    return {str(code): int(n) for code, n in rows}


# --------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class Week:
    key: str  # "2026-W48", as storage.stats writes it
    monday: date


@dataclass(frozen=True)
class StatsView:
    weeks: list[Week]
    per_week_category: dict[tuple[str, str], int]
    per_neighbourhood: list[tuple[str, int]]
    ack_median_per_week: list[float | None]
    resolve_median_per_week: list[float | None]
    total: int
    open_now: int
    median_hours_to_acknowledge: float | None
    median_hours_to_resolve: float | None
    since: datetime


def week_range(today: date, weeks: int) -> list[Week]:
    monday = today - timedelta(days=today.weekday())
    mondays = [monday - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    return [Week(key=f"{m.isocalendar()[0]}-W{m.isocalendar()[1]:02d}", monday=m) for m in mondays]


def stats_view(*, session: Session, zone: ZoneInfo, weeks: int, now: datetime, not_located: str,
               top: int = 15) -> StatsView:
    """The figures of the stats page over the last ``weeks`` ISO weeks (this one included)."""
    week_list = week_range(now.astimezone(zone).date(), weeks)
    since = datetime.combine(week_list[0].monday, time.min, tzinfo=zone)
    filters = CaseFilters(since=since)
    stats = case_stats(session=session, filters=filters, zone=zone)
    per_week_category: Counter[tuple[str, str]] = Counter()
    per_neighbourhood: Counter[str] = Counter()
    for row in stats.counts:
        per_week_category[(str(row["week"]), str(row["category"]))] += int(row["cases"])  # type: ignore[call-overload]
        name = str(row["neighbourhood"])
        per_neighbourhood[not_located if name == "unknown" else name] += int(row["cases"])  # type: ignore[call-overload]
    cases, _ = list_cases(session=session, filters=filters, limit=100_000)
    by_week: defaultdict[str, list[Case]] = defaultdict(list)
    for case in cases:
        by_week[iso_week(case.created_at, zone)].append(case)
    return StatsView(
        weeks=week_list,
        per_week_category=dict(per_week_category),
        per_neighbourhood=sorted(per_neighbourhood.items(), key=lambda item: (-item[1], item[0]))[:top],
        ack_median_per_week=[median_hours(by_week.get(week.key, []), "acknowledged_at") for week in week_list],
        resolve_median_per_week=[median_hours(by_week.get(week.key, []), "resolved_at") for week in week_list],
        total=stats.total,
        open_now=count_open(session=session),
        median_hours_to_acknowledge=stats.median_hours_to_acknowledge,
        median_hours_to_resolve=stats.median_hours_to_resolve,
        since=since,
    )


# --------------------------------------------------------------------------- perceived safety


@dataclass(frozen=True)
class SafetyRow:
    code: str
    name: str
    cells: list[tuple[float, int] | None]  # per week: (mean, answers)
    mean: float
    answers: int


@dataclass(frozen=True)
class SafetyView:
    summary: SurveySummary
    overall: list[tuple[float, int] | None]  # every neighbourhood together, per week
    rows: list[SafetyRow]  # most answers first


def safety_view(*, session: Session, zone: ZoneInfo, weeks: list[Week], since: datetime,
                names: dict[str, str], not_located: str) -> SafetyView:
    """Perceived safety (survey answers 1 to 5) per neighbourhood and week, with the counts."""
    points = safety_over_time(session=session, zone=zone, since=since)
    keys = [week.key for week in weeks]
    by_code: defaultdict[str, dict[str, tuple[float, int]]] = defaultdict(dict)
    for point in points:
        by_code[point.neighbourhood][point.period] = (point.mean, point.answers)

    def combine(cells: list[tuple[float, int]]) -> tuple[float, int] | None:
        answers = sum(n for _, n in cells)
        return (round(sum(m * n for m, n in cells) / answers, 2), answers) if answers else None

    overall = [combine([cells[key] for cells in by_code.values() if key in cells]) for key in keys]
    rows = []
    for code, cells in by_code.items():
        total = combine(list(cells.values()))
        assert total is not None
        rows.append(SafetyRow(code=code, name=names.get(code, not_located if code == "unknown" else code),
                              cells=[cells.get(key) for key in keys], mean=total[0], answers=total[1]))
    rows.sort(key=lambda row: (-row.answers, row.name))
    return SafetyView(summary=survey_summary(session=session, since=since), overall=overall, rows=rows)


# --------------------------------------------------------------------------- the API's figures


@dataclass(frozen=True)
class Figures:
    cases: CaseStats
    surveys: SurveySummary  # answers given since ``filters.since`` (the other filters are about cases)
    safety: list[SafetyPoint]


def figures(*, session: Session, filters: CaseFilters, zone: ZoneInfo) -> Figures:
    """The API's statistics: cases per category, neighbourhood and week, surveys, perceived safety."""
    return Figures(cases=case_stats(session=session, filters=filters, zone=zone),
                   surveys=survey_summary(session=session, since=filters.since),
                   safety=safety_over_time(session=session, zone=zone, since=filters.since))
