"""Cases for tests, built the way production builds them: filed through
``storage.cases.create_case`` and moved the way a dispatcher moves them, through
``storage.desk.update_case`` one allowed step at a time, so a test never holds a case in a
state production could not reach."""

from __future__ import annotations

from collections import deque
from typing import Any

from sqlmodel import Session

from storage.cases import create_case
from storage.desk import TRANSITIONS, CaseChange, update_case
from storage.models import Case, CaseCreate


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
