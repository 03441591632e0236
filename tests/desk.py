"""A running bot service with its desk and three staff users, for the tests that use the
desk through HTTP (load with ``pytest_plugins = ("tests.desk",)`` for the ``desk`` fixture)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update
from sqlmodel import select

from bot.app import create_app
from common.settings import Settings
from storage import attachments as attachment_store
from storage import cases as case_store
from storage import users
from storage.db import create_db_engine, session_scope
from storage.desk import CaseChange, update_case
from storage.migrate import upgrade_database
from storage.models import Attachment, AuditLog, Case, CaseCreate, CaseEvent, utcnow
from tests.conftest import free_port, make_settings

PASSWORD = "correct horse battery staple"


class Desk:
    """A running bot service with three staff users (dispatcher1, admin1, community1)."""

    def __init__(self, server: TestServer, settings: Settings, db: Any, make_client: Any) -> None:
        self.server = server
        self.settings = settings
        self.db = db
        self._make_client = make_client
        self._senders = 0

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def new_case(self, *, photo: bytes | None = None, age: timedelta | None = None, **fields: Any) -> str:
        self._senders += 1
        sender = fields.pop("sender_id", f"web:citizen-{self._senders}")
        values = {"sender_id": sender, "channel": "web", "locale": "es", "category": "noise",
                  "description": "Música muy alta cada noche desde el bar de la esquina.", "contact_mode": "chat",
                  **fields}
        with session_scope(self.db) as session:
            ids = []
            if photo is not None:
                ids.append(attachment_store.add_pending_attachment(session=session, sender_id=sender, data=photo,
                                                             mime_type="image/png").id)
            case = case_store.create_case(session=session, case_in=CaseCreate(**values, attachment_ids=ids))
            if age is not None:
                backdate(session, case.ref, age)
            return case.ref

    def change(self, ref: str, actor: str = "dispatcher1", **change: Any) -> None:
        with session_scope(self.db) as session:
            case = case_store.get_case_by_ref(session=session, ref=ref)
            assert case is not None
            update_case(session=session, case=case, change=CaseChange(**change), actor=actor)

    def audit(self, action: str) -> list[AuditLog]:
        with session_scope(self.db) as session:
            return list(session.exec(select(AuditLog).where(AuditLog.action == action)).all())

    async def client(self, name: str | None = None) -> TestClient:
        client = await self._make_client(self.server)
        if name is not None:
            response = await sign_in(client, name)
            assert response.status == 303, await response.text()
        return client


def backdate(session: Any, ref: str, age: timedelta, *, acknowledged: timedelta | None = None,
             resolved: timedelta | None = None) -> None:
    """Move a case (and its history) ``age`` into the past; ack/resolve that long after creation."""
    case = case_store.get_case_by_ref(session=session, ref=ref)
    assert case is not None
    created = utcnow() - age
    shift = case.created_at - created
    values: dict[str, Any] = {"created_at": created, "updated_at": case.updated_at - shift}
    if acknowledged is not None:
        values["acknowledged_at"] = created + acknowledged
    if resolved is not None:
        values["resolved_at"] = created + resolved
    session.execute(update(Case).where(Case.id == case.id).values(**values))
    later = created + (acknowledged or timedelta(minutes=30))
    for index, event in enumerate(case_store.get_case_events(session=session, case_id=case.id)):
        at = event.at - shift if index == 0 or acknowledged is None else later + (index - 1) * timedelta(minutes=9)
        session.execute(update(CaseEvent).where(CaseEvent.id == event.id).values(at=at))
    session.execute(update(Attachment).where(Attachment.case_id == case.id).values(created_at=created))
    session.commit()


async def sign_in(client: TestClient, name: str, password: str = PASSWORD, **extra: str) -> Any:
    page = await client.get("/desk/login")
    token = re.search(r'name="login_token" value="([^"]+)"', await page.text())
    assert token, "the sign-in form has a token"
    return await client.post("/desk/login", data={"login_token": token.group(1), "name": name,
                                                  "password": password, "next": "/desk/", **extra},
                             allow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has a CSRF field"
    return found.group(1)


@pytest.fixture
async def desk(tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any) -> AsyncIterator[Desk]:
    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port())
    upgrade_database(settings.database_url)
    db = create_db_engine(settings.database_url)
    with session_scope(db) as session:
        for role in users.ROLES:
            users.create_user(session=session, name=f"{role}1", role=role)
            users.set_password(session=session, name=f"{role}1", password=PASSWORD)
    server = await aiohttp_server(create_app(settings))
    yield Desk(server, settings, db, aiohttp_client)
    db.dispose()
