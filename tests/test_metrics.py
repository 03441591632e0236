"""GET /metrics on a real bot service: who may scrape it, and that the counters move when a
citizen files a whole report through the real engine, when the engine is down, when a
citizen writes too fast and when the database does not answer; and the token-free listener
on a loopback port of its own (METRICS_PORT)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import create_app
from bot.observability import metrics_listener
from storage import cases as case_store
from storage import users
from storage.db import create_db_engine, session_scope
from storage.migrate import upgrade_database
from storage.models import CaseCreate
from tests.conftest import Stack, free_port, make_settings
from tests.test_webchat import app_settings, hello, report_with_name_and_phone, say

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def staff_tokens(database_url: str) -> dict[str, str]:
    db = create_db_engine(database_url)
    tokens = {}
    with session_scope(db) as session:
        for role in ("dispatcher", "admin"):
            _, tokens[role] = users.create_user(session=session, name=f"metrics-{role}-{free_port()}", role=role)
    db.dispose()
    return tokens


async def scrape(client, token: str) -> Samples:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await response.text())


@pytest.mark.engine
async def test_the_counters_move_when_a_citizen_files_a_report(stack: Stack, aiohttp_client) -> None:
    settings = app_settings(stack)
    tokens = staff_tokens(settings.database_url)
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers={"Authorization": f"Bearer {tokens['dispatcher']}"})).status == 403
    before = await scrape(client, tokens["admin"])
    assert value(before, "barri_scheduler_leader") in (0.0, 1.0)

    ws, _ = await hello(client, locale="en-GB")
    ref = await report_with_name_and_phone(ws, "someone smashed the window of my car",
                                           name="Jordi Casals", phone="+34 633 222 111")
    headers = {"Authorization": f"Bearer {tokens['admin']}"}
    changed = await client.patch(f"/api/v1/cases/{ref}", json={"status": "acknowledged"}, headers=headers)
    assert changed.status == 200, await changed.text()
    pushed = await ws.receive_json(timeout=20)  # the status change reaches the open chat through the outbox
    assert ref in pushed.get("text", ""), pushed
    case = await (await client.get(f"/api/v1/cases/{ref}", headers=headers)).json()
    after = await scrape(client, tokens["admin"])

    turns = value(after, "barri_turns_total", channel="web") - value(before, "barri_turns_total", channel="web")
    assert turns >= 4  # the report took several messages
    assert value(after, "barri_conversations_total", channel="web") - value(
        before, "barri_conversations_total", channel="web") == 1
    answered = value(after, "barri_engine_turn_seconds_count", channel="web") - value(
        before, "barri_engine_turn_seconds_count", channel="web")
    assert answered == turns
    assert value(after, "barri_engine_turn_seconds_sum", channel="web") > value(
        before, "barri_engine_turn_seconds_sum", channel="web")
    category = case["category"]
    assert value(after, "barri_cases_created_total", category=category, channel="web") == value(
        before, "barri_cases_created_total", category=category, channel="web") + 1
    assert value(after, "barri_outbox_sends_total", channel="web", result="sent") == value(
        before, "barri_outbox_sends_total", channel="web", result="sent") + 1
    assert value(after, "barri_outbox_rows", status="sent", channel="web") >= 1
    assert value(after, "barri_engine_errors_total", channel="web") == value(
        before, "barri_engine_errors_total", channel="web")
    await ws.close()


async def test_engine_outages_fast_writers_and_database_errors_are_counted(tmp_path: Path, aiohttp_client) -> None:
    # no engine listens on these ports: the message is kept for replay
    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port(), max_messages_per_minute=2)
    upgrade_database(settings.database_url)
    tokens = staff_tokens(settings.database_url)
    app = create_app(settings)
    port = free_port()
    app.cleanup_ctx.append(metrics_listener(app, "127.0.0.1", port))
    client = await aiohttp_client(app)
    ws, _ = await hello(client)
    replies = await say(ws, {"type": "text", "text": "my bike was stolen"})
    assert replies and replies[0]["type"] == "message"
    for _ in range(2):  # over the limit of 2 a minute: not read
        await ws.send_json({"type": "text", "text": "hello?"})
    for _ in range(50):  # the answers: kept, then "too many messages"
        samples = await scrape(client, tokens["admin"])
        if value(samples, "barri_rate_limit_refusals_total", channel="web") >= 1:
            break
        await ws.receive_json(timeout=5)
    assert value(samples, "barri_rate_limit_refusals_total", channel="web") == 1
    assert value(samples, "barri_messages_kept_total", channel="web") == 2  # the two read, kept for replay
    assert value(samples, "barri_engine_errors_total", channel="web") >= 1
    assert value(samples, "barri_turns_total", channel="web") == 3
    await ws.close()

    # the loopback listener needs no token; it is the same registry
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        local = parse(await response.text())
    assert value(local, "barri_messages_kept_total", channel="web") == 2
    assert value(local, "barri_database_errors_total") == 0
    with pytest.raises(ValueError, match="loopback"):
        metrics_listener(app, "0.0.0.0", port)  # noqa: S104 - the point of the test


async def test_database_errors_are_counted(tmp_path: Path, aiohttp_client) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/barri"
    settings = make_settings(tmp_path, database_url=nowhere, rasa_port=free_port(), actions_port=free_port())
    app = create_app(settings)
    port = free_port()
    app.cleanup_ctx.append(metrics_listener(app, "127.0.0.1", port))
    client = await aiohttp_client(app)
    response = await client.get("/api/v1/cases", headers={"Authorization": "Bearer barri_" + "x" * 43})
    assert response.status == 503
    async with aiohttp.ClientSession() as session:
        for _ in range(2):  # the second shows the first scrape's own failed reading too
            async with session.get(f"http://127.0.0.1:{port}/metrics") as scraped:
                assert scraped.status == 200  # the scrape still answers, without the database's figures
                samples = parse(await scraped.text())
    assert value(samples, "barri_database_errors_total") == 2  # the request, and the first scrape's reading
    assert not any(name.startswith(("barri_outbox", "barri_cases")) for name, _ in samples)
    assert value(samples, "barri_scheduler_leader") == 0


async def test_reports_and_status_messages_move_the_counters_without_the_engine(tmp_path: Path,
                                                                                aiohttp_client) -> None:
    """The same scrape on a service whose engine is away: a report through Open311, another
    filed for a web-chat citizen as the action server files it (storage.create_case), a
    dispatcher's status change pushed to that citizen's open chat by the outbox."""
    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port())
    upgrade_database(settings.database_url)
    tokens = staff_tokens(settings.database_url)
    client = await aiohttp_client(create_app(settings))
    before = await scrape(client, tokens["admin"])

    filed = await client.post("/open311/v2/requests.json", data={
        "api_key": tokens["admin"], "service_code": "noise", "lat": "41.380912", "long": "2.173456",
        "description": "loud music every night"})
    assert filed.status == 200, await filed.text()
    ws, welcome = await hello(client)
    db = create_db_engine(settings.database_url)
    with session_scope(db) as session:
        case = case_store.create_case(session=session, case_in=CaseCreate(
            sender_id=welcome["sender"], channel="web", locale="en", category="vandalism",
            description="they broke the bus shelter", contact_mode="chat"))
        ref = case.ref
    db.dispose()
    headers = {"Authorization": f"Bearer {tokens['admin']}"}
    changed = await client.patch(f"/api/v1/cases/{ref}", json={"status": "acknowledged"}, headers=headers)
    assert changed.status == 200, await changed.text()
    pushed = await ws.receive_json(timeout=20)
    assert ref in pushed.get("text", ""), pushed
    for _ in range(50):  # the worker records the row sent right after the socket took it
        after = await scrape(client, tokens["admin"])
        if value(after, "barri_outbox_rows", status="sent", channel="web") == 1:
            break
        await asyncio.sleep(0.1)

    for category, channel in (("noise", "open311"), ("vandalism", "web")):
        assert value(after, "barri_cases_created_total", category=category, channel=channel) == value(
            before, "barri_cases_created_total", category=category, channel=channel) + 1
    assert value(after, "barri_outbox_sends_total", channel="web", result="sent") == value(
        before, "barri_outbox_sends_total", channel="web", result="sent") + 1
    assert value(after, "barri_outbox_rows", status="sent", channel="web") == 1
    assert value(after, "barri_outbox_oldest_due_seconds", channel="web") == 0  # nothing waits
    await ws.close()
