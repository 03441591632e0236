"""Schemathesis against the running bot service's /api/v1/openapi.json, with a real staff
token: no 5xx, status codes, content types and bodies as the document says."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis import checks as st_checks

from bot.app import create_app
from storage import attachments as attachment_store
from storage import cases as case_store
from storage import users
from storage.db import create_db_engine, session_scope
from storage.migrate import upgrade_database
from storage.models import CaseCreate
from tests.conftest import free_port, make_settings

PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 40


class RunningApp:
    """The real app on a loopback port, in its own thread and loop (schemathesis calls it
    synchronously)."""

    def __init__(self, app: web.Application, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._app, self._port = app, port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self._app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self._port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> RunningApp:
        self._thread.start()
        assert self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    tmp = tmp_path_factory.mktemp("fuzz-api")
    app_settings = make_settings(Path(tmp), rasa_port=free_port(), actions_port=free_port())
    upgrade_database(app_settings.database_url)
    db = create_db_engine(app_settings.database_url)
    refs = []
    with session_scope(db) as session:
        _, token = users.create_user(session=session, name="fuzzadmin", role="admin")
        for n, category in enumerate(("noise", "theft", "vandalism")):
            photo = attachment_store.add_pending_attachment(session=session, sender_id=f"web:fuzz{n}", data=PNG,
                                                      mime_type="image/png")
            refs.append(case_store.create_case(session=session, case_in=CaseCreate(
                sender_id=f"web:fuzz{n}", channel="web", locale="ca", category=category,
                description=f"<script>alert({n})</script> =cmd|' /C calc'!A0", contact_mode="contact",
                contact_name="Núria", contact_phone="+34 600 000 000", latitude=41.38 + n / 100, longitude=2.17,
                neighbourhood_code="01-01", neighbourhood_name="el Raval", district_name="Ciutat Vella",
                attachment_ids=[photo.id])).ref)
    db.dispose()
    with RunningApp(create_app(app_settings), app_settings.bot_port) as running:
        yield running.url, {"Authorization": f"Bearer {token}"}, refs


CHECKS = [st_checks.not_a_server_error, st_checks.status_code_conformance, st_checks.content_type_conformance,
          st_checks.response_schema_conformance]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_staff_api_keeps_to_its_openapi_document(
    api: tuple[str, dict[str, str], list[str]], mode: GenerationMode
) -> None:
    url, auth, refs = api
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    # every operation with random values, and those on one case also on real cases
    runs = [(operation, {}) for operation in operations] + [
        (operation, {"ref": ref}) for operation in operations if "{ref}" in operation.path for ref in refs[:1]]
    for operation, known in runs:

        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=known or None))
        def run(case: schemathesis.Case) -> None:
            if mode is GenerationMode.POSITIVE:
                response = case.call_and_validate(base_url=url, headers=auth, checks=CHECKS)
                # rules beyond the schema (a known neighbourhood, a legal transition) may answer
                # 404/409/422, but a request the document allows is never malformed
                assert response.status_code != 400, f"{case.method} {case.formatted_path}: {response.text}"
            else:
                case.call_and_validate(base_url=url, headers=auth,
                                       checks=[*CHECKS, st_checks.negative_data_rejection])

        try:
            run()
        except (AssertionError, BaseExceptionGroup) as failure:  # collect every operation's, then report
            failures.append(f"{operation.label} {known}: {failure}")
    assert not failures, "\n\n".join(failures)
