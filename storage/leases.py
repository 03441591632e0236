"""Named leases: a lock in the database that one process holds for a while and must renew.

The scheduler's leader lock is one (``bot.scheduler.Leadership``). Acquiring and renewing
are the same single statement: insert the lease if it is absent, or take it over if it has
expired or is already ours (``INSERT ... ON CONFLICT (name) DO UPDATE ... WHERE``). Both
SQLite and PostgreSQL run it atomically, so two processes can never both get the lease.

Expiry is judged by the clock of the process asking; keep the instances' clocks in sync
(NTP) and the time-to-live well above any drift.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from storage.db import atomic
from storage.models import Lease, utcnow


def new_holder_id() -> str:
    """A lease holder's name: host, process and a random part (two holders in one process differ)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def acquire_lease(
    *, session: Session, name: str, holder: str, ttl: timedelta, now: datetime | None = None
) -> bool:
    """Take or renew ``name`` for ``holder`` until ``now + ttl``; commit; True if it is ours.

    Fails (returns False, changes nothing) while another holder's lease has not expired.
    """
    now = now or utcnow()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(Lease).values(name=name, holder=holder, expires_at=now + ttl)
    upsert = statement.on_conflict_do_update(
        index_elements=["name"],
        set_={"holder": statement.excluded.holder, "expires_at": statement.excluded.expires_at},
        # the row is only touched when it is ours or abandoned
        where=or_(col(Lease.holder) == holder, col(Lease.expires_at) <= now),
    ).returning(col(Lease.holder))
    with atomic(session):
        won = session.execute(upsert).first() is not None
    return won


def release_lease(*, session: Session, name: str, holder: str) -> bool:
    """Give the lease up at once if ``holder`` has it (so a successor need not wait)."""
    with atomic(session):
        result = session.execute(delete(Lease).where(col(Lease.name) == name, col(Lease.holder) == holder))
    return bool(getattr(result, "rowcount", 0))
