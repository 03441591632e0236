"""The audit log: who did what to which case, user or reporter, and when.

``record_audit`` joins the caller's transaction (it never commits), so the entry is stored
exactly when the change it describes is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from storage.models import AuditLog, utcnow


def record_audit(
    *,
    session: Session,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    detail: Mapping[str, Any] | str | None = None,
) -> AuditLog:
    """Add an audit entry to the caller's transaction (no commit).

    ``detail`` is a mapping (stored as JSON) or a JSON string; never put personal data in it.
    """
    if isinstance(detail, str):
        json.loads(detail)  # raises ValueError when it is not JSON
        detail_text: str | None = detail
    elif detail is None:
        detail_text = None
    else:
        detail_text = json.dumps(dict(detail), sort_keys=True, ensure_ascii=False, default=str)
    entry = AuditLog(
        at=utcnow(),
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        detail=detail_text,
    )
    session.add(entry)
    return entry
