"""Figures for dispatchers and the city: cases per category, neighbourhood and week, and how
long cases wait to be acknowledged and resolved."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from storage.desk import CaseFilters, list_cases
from storage.models import AuditLog, Case


@dataclass(frozen=True)
class CaseStats:
    counts: list[dict[str, object]]  # {"category", "neighbourhood", "week", "cases"}
    total: int
    median_hours_to_acknowledge: float | None
    median_hours_to_resolve: float | None


def iso_week(moment: datetime, zone: ZoneInfo) -> str:
    year, week, _ = moment.astimezone(zone).isocalendar()
    return f"{year}-W{week:02d}"


def case_stats(*, session: Session, filters: CaseFilters, zone: ZoneInfo, limit: int = 100_000) -> CaseStats:
    cases, total = list_cases(session=session, filters=filters, limit=limit, offset=0)
    counter: Counter[tuple[str, str, str]] = Counter(
        (case.category, case.neighbourhood_name or "unknown", iso_week(case.created_at, zone)) for case in cases
    )
    counts = [
        {"category": category, "neighbourhood": neighbourhood, "week": week, "cases": n}
        for (category, neighbourhood, week), n in sorted(
            counter.items(), key=lambda item: (item[0][2], item[0][0], item[0][1])
        )
    ]
    return CaseStats(
        counts=counts,
        total=total,
        median_hours_to_acknowledge=median_hours(cases, "acknowledged_at"),
        median_hours_to_resolve=median_hours(cases, "resolved_at"),
    )


def median_hours(cases: list[Case], stamp: str) -> float | None:
    waits = [(getattr(case, stamp) - case.created_at).total_seconds() / 3600 for case in cases if getattr(case, stamp)]
    return round(statistics.median(waits), 2) if waits else None


def audit_entries(
    *, session: Session, since: datetime | None = None, actor: str | None = None, action: str | None = None,
    limit: int = 100, offset: int = 0,
) -> list[AuditLog]:
    query = select(AuditLog)
    if since is not None:
        query = query.where(col(AuditLog.at) >= since)
    if actor:
        query = query.where(AuditLog.actor == actor)
    if action:
        query = query.where(AuditLog.action == action)
    return list(session.exec(query.order_by(col(AuditLog.at).desc()).offset(offset).limit(limit)).all())
