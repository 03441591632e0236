"""Cases for tests, built the way production builds them: filed through
``storage.cases.create_case`` and moved the way a dispatcher moves them, through
``storage.desk.update_case`` one allowed step at a time, so a test never holds a case in a
state production could not reach."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, SQLModel, select

from storage.cases import create_case
from storage.desk import TRANSITIONS, CaseChange, update_case
from storage.models import Attachment, AttachmentData, AuditLog, Case, CaseCreate, CaseEvent, Reporter


def path_to(current: str, wanted: str) -> list[str]:
    """The shortest list of allowed steps from ``current`` to ``wanted`` (the first in
    alphabetical order when several are as short)."""
    came_from: dict[str, str] = {}
    queue = deque([current])
    while queue:
        status = queue.popleft()
        if status == wanted:
            steps = []
            while status != current:
                steps.append(status)
                status = came_from[status]
            return steps[::-1]
        for following in sorted(TRANSITIONS[status]):
            if following not in came_from and following != current:
                came_from[following] = status
                queue.append(following)
    raise ValueError(f"a {current} case can never become {wanted}")


def move_case(session: Session, case: Case, to_status: str, *, actor: str = "dispatcher1") -> Case:
    """Walk ``case`` to ``to_status`` with one ``update_case`` per allowed step; the moved case."""
    for status in path_to(case.status, to_status):
        case = update_case(session=session, case=case, change=CaseChange(status=status), actor=actor)
    return case


def file_case(session: Session, sender_id: str, *, status: str = "new", actor: str = "dispatcher1",
              **fields: Any) -> Case:
    """A case as the action server files it (a vandalism report from the web chat in English,
    in el Raval, updates in the chat, unless ``fields`` say otherwise), then moved to ``status``."""
    values: dict[str, Any] = {
        "channel": "web", "locale": "en", "category": "vandalism", "description": "Someone smashed the bus stop glass",
        "neighbourhood_code": "01-01", "contact_mode": "chat", **fields,
    }
    case = create_case(session=session, case_in=CaseCreate(sender_id=sender_id, **values))
    return move_case(session, case, status, actor=actor)


# Two citizens and a photo for the storage tests
ALICE = "telegram:1001"
BOB = "web:b0b0b0b0"

PHOTO = b"\xff\xd8\xff\xe0 not really a jpeg \x00\x01\x02"


def case_input(sender_id: str = ALICE, **overrides: Any) -> CaseCreate:
    """A whole report (Catalan, with place and time) as the action server would file it."""
    values: dict[str, Any] = {
        "sender_id": sender_id,
        "channel": "telegram" if sender_id.startswith("telegram:") else "web",
        "locale": "ca",
        "category": "vandalism",
        "description": "Han trencat la marquesina de l'autobús",
        "address": "Carrer de Mallorca 401, Barcelona",
        "latitude": 41.403629,
        "longitude": 2.174356,
        "neighbourhood_code": "02-06",
        "neighbourhood_name": "la Sagrada Família",
        "district_name": "Eixample",
        "occurred_at": datetime(2026, 3, 14, 22, 30, tzinfo=timezone(timedelta(hours=1))),
        "occurred_text": "ahir a la nit",
    }
    values.update(overrides)
    return CaseCreate(**values)


def count(session: Session, model: type[SQLModel]) -> int:
    """How many rows the table of ``model`` holds."""
    return session.exec(select(func.count()).select_from(model)).one()


def counts(session: Session) -> dict[str, int]:
    """The row counts of the tables a report writes to, by model name."""
    return {
        model.__name__: count(session, model)
        for model in (Reporter, Case, CaseEvent, Attachment, AttachmentData, AuditLog)
    }
