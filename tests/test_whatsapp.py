"""The WhatsApp channel: the real bot service (and, where marked, the real engine and action
server) against a Cloud API server on loopback (tests/whatsapp_server.py) that plays Meta
and the citizen's phone."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from bot import jobs
from bot.app import create_app
from bot.channels.base import OutgoingMessage
from bot.channels.whatsapp.cloud import pseudonym_key, sender_of
from bot.jobs import JobContext
from bot.keys import CHANNELS, OUTBOXES, SETTINGS
from common.i18n import Catalogs
from storage import attachments, erasure, reporters
from storage import cases as case_store
from storage import whatsapp as contacts
from storage.db import create_db_engine, session_scope
from storage.migrate import upgrade_database
from storage.models import OutboxMessage, PendingMessage, Reporter, Subscription, WhatsAppContact, utcnow
from tests.conftest import Stack, StaffApp, free_port, make_settings, start_staff_app
from tests.test_webchat import app_settings
from tests.whatsapp_server import (  # noqa: F401 - the fixture
    APP_SECRET,
    PHONE_NUMBER_ID,
    TOKEN,
    VERIFY_TOKEN,
    FakeWhatsApp,
    Sent,
    fake_whatsapp,
)

PHONE = "34699111222"
REF = re.compile(r"\b(?!SHA-256)[2-9A-Z]{3}-[2-9A-Z]{3}\b")
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000b4944415478da636000020000050001e9fadcd80000000049454e44ae426082"
)
NO_QUIET_HOURS = {"quiet_hours_start": "00:00", "quiet_hours_end": "00:00"}


def whatsapp_settings(fake: FakeWhatsApp) -> dict[str, object]:
    return {"whatsapp_token": TOKEN, "whatsapp_phone_number_id": PHONE_NUMBER_ID, "whatsapp_app_secret": APP_SECRET,
            "whatsapp_verify_token": VERIFY_TOKEN, "whatsapp_api_url": fake.api_url, **NO_QUIET_HOURS}


async def start_bot(tmp_path: Path, fake: FakeWhatsApp, aiohttp_server: Any, **overrides: object) -> Any:
    """The bot service with WhatsApp on, its engine ports pointing nowhere (not needed here)."""
    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port(), **whatsapp_settings(fake),
                             **overrides)
    upgrade_database(settings.database_url)
    server = await aiohttp_server(create_app(settings))
    fake.webhook_url = str(server.make_url("/whatsapp/webhook"))
    return server


def no_phone_in(caplog: pytest.LogCaptureFixture, phone: str = PHONE) -> None:
    lines = "\n".join(record.getMessage() + str(record.args or "") + (record.exc_text or "")
                      for record in caplog.records)
    assert phone not in lines and phone[2:] not in lines


def check_limits(sent: list[Sent]) -> None:
    """What WhatsApp itself would refuse never goes (the fake refuses it too: nothing refused)."""
    for message in sent:
        if message.interactive.get("type") == "button":
            assert len(message.choices) <= 3 and all(len(title) <= 20 for _, title in message.choices)
        if message.interactive.get("type") == "list":
            assert len(message.choices) <= 10 and all(len(title) <= 24 for _, title in message.choices)


# --------------------------------------------------------------------------- the webhook


async def test_the_verification_handshake(tmp_path: Path, fake_whatsapp: FakeWhatsApp, aiohttp_server) -> None:  # noqa: F811
    server = await start_bot(tmp_path, fake_whatsapp, aiohttp_server)
    client = server.make_url("/whatsapp/webhook")
    import aiohttp

    async with aiohttp.ClientSession() as http:
        query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
        async with http.get(client, params=query) as response:
            assert response.status == 200 and await response.text() == "1158201444"
        async with http.get(client, params={**query, "hub.verify_token": "guessed"}) as response:
            assert response.status == 403 and "1158201444" not in await response.text()
        async with http.get(client, params={**query, "hub.mode": "unsubscribe"}) as response:
            assert response.status == 403
    await server.close()

    # without its four values the channel is off: no webhook at all
    settings = make_settings(tmp_path / "off", rasa_port=free_port(), actions_port=free_port(),
                             whatsapp_token=TOKEN, whatsapp_api_url=fake_whatsapp.api_url)
    (tmp_path / "off").mkdir()
    upgrade_database(settings.database_url)
    off = await aiohttp_server(create_app(settings))
    assert "whatsapp" not in off.app[CHANNELS]
    async with aiohttp.ClientSession() as http, http.get(off.make_url("/whatsapp/webhook"), params=query) as response:
        assert response.status == 404
    await off.close()


async def test_a_signed_notification_is_read_and_a_forged_one_is_not(
        tmp_path: Path, fake_whatsapp: FakeWhatsApp, aiohttp_server, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    caplog.set_level(logging.DEBUG)
    fake = fake_whatsapp
    server = await start_bot(tmp_path, fake, aiohttp_server)
    sticker = {"from": PHONE, "id": "wamid.sticker1", "timestamp": str(int(time.time())), "type": "sticker",
               "sticker": {"id": "123", "mime_type": "image/webp"}}
    forged = fake.notification(messages=[{**sticker, "id": "wamid.forged"}])
    assert await fake.post(forged, secret="not-the-app-secret") == 403
    assert await fake.post(forged, secret=None) == 403  # no signature
    assert await fake.post(forged, signature="sha256=" + "0" * 64) == 403
    assert await fake.post(fake.notification(messages=[sticker])) == 200
    sent = await fake.wait_for(PHONE, 1)
    assert sent[0].text == "I can read text, photos and locations. Please write your message."
    assert await fake.post(fake.notification(messages=[sticker])) == 200  # Meta delivering it twice
    # another number of the same app is not ours to answer
    other = fake.notification(messages=[{**sticker, "id": "wamid.other"}], phone_number_id="5550001")
    assert await fake.post(other) == 200
    await asyncio.sleep(1.5)
    assert len(fake.to(PHONE)) == 1  # neither the forged ones, nor the repeat, nor the other number's
    # a body over the limit is refused before it is read
    huge = fake.notification(messages=[{**sticker, "id": "wamid.huge", "text": {"body": "x" * 2_000_000}}])
    assert await fake.post(huge) == 413

    # the number is kept in one table only; the engine, cases and logs know a pseudonym
    settings = server.app[SETTINGS]
    sender = sender_of(PHONE, pseudonym_key(settings))
    assert sender.startswith("whatsapp:") and PHONE not in sender
    db = create_db_engine(settings.database_url)
    with session_scope(db) as session:
        contact = session.get(WhatsAppContact, sender)
        assert contact is not None and contact.phone == PHONE and contact.last_inbound_at is not None
    no_phone_in(caplog)
    await server.close()


async def test_messages_of_one_citizen_are_answered_in_order_in_their_language(
        tmp_path: Path, fake_whatsapp: FakeWhatsApp, aiohttp_server) -> None:  # noqa: F811
    fake = fake_whatsapp
    server = await start_bot(tmp_path, fake, aiohttp_server)
    # the engine is down: the text is kept for replay and the citizen told so, in Spanish;
    # the sticker after it is answered after it, in the language the citizen wrote in
    await fake.send_text(PHONE, "Hola, esta mañana me han robado la cartera en el metro de Sants")
    await fake.send_sticker(PHONE)
    await fake.send_text(PHONE, "   ")
    sent = await fake.wait_for(PHONE, 3)
    assert "no hace falta que lo vuelvas a enviar" in sent[0].text.lower() or "recibido" in sent[0].text.lower()
    assert sent[1].text == "Puedo leer texto, fotos y ubicaciones. Escribe tu mensaje."
    assert "vacío" in sent[2].text
    await server.close()


# --------------------------------------------------------------------------- the outbox


def subscriber(db: Any, settings: Any, phone: str, *, wrote_ago: timedelta, locale: str = "es") -> str:
    sender = sender_of(phone, pseudonym_key(settings))
    with session_scope(db) as session:
        reporter = reporters.get_or_create_reporter(session=session, sender_id=sender, channel="whatsapp",
                                                     locale=locale)
        session.add(Subscription(reporter_id=reporter.id, neighbourhood_code="06-31"))
        session.commit()
        contacts.record_inbound(session=session, sender_id=sender, phone=phone, at=utcnow() - wrote_ago)
    return sender


def rows(db: Any) -> dict[str, OutboxMessage]:
    with session_scope(db) as session:
        found = session.exec(select(OutboxMessage, Reporter).join(Reporter)).all()
        return {reporter.sender_id: message for message, reporter in found}


async def wait_rows(db: Any, predicate, timeout: float = 30) -> dict[str, OutboxMessage]:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = rows(db)
        if predicate(found):
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"outbox rows never got there: {[(m.status, m.last_error) for m in rows(db).values()]}")


async def test_an_alert_inside_and_outside_the_24_hour_window(
        tmp_path: Path, fake_whatsapp: FakeWhatsApp, aiohttp_client) -> None:  # noqa: F811
    fake = fake_whatsapp
    staff: StaffApp = await start_staff_app(tmp_path, aiohttp_client, **whatsapp_settings(fake))
    fake.webhook_url = str(staff.client.make_url("/whatsapp/webhook"))
    recent, away = "34611000001", "34611000002"
    inside = subscriber(staff.db, staff.settings, recent, wrote_ago=timedelta(hours=2))
    outside = subscriber(staff.db, staff.settings, away, wrote_ago=timedelta(hours=30), locale="ca")
    fake.enforce_window = True
    fake.last_inbound[recent] = time.time() - 2 * 3600
    fake.last_inbound[away] = time.time() - 30 * 3600

    alert = {"neighbourhoods": ["06-31"], "severity": "warning",
             "texts": {"es": "Corte de agua mañana de 8 a 12.", "ca": "Tall d'aigua demà de 8 a 12."}}
    created = await staff.client.post("/api/v1/alerts", json=alert,
                                      headers={"Authorization": f"Bearer {staff.tokens['community']}"})
    assert created.status == 201, await created.text()
    (free_form,) = await fake.wait_for(recent, 1)
    (templated,) = await fake.wait_for(away, 1)
    assert free_form.type == "text" and "Corte de agua mañana de 8 a 12." in free_form.text
    assert "\n" in free_form.text  # the alert as written: heading, blank line, text
    assert templated.type == "template"
    assert templated.body["template"]["name"] == "barri_alert"
    assert templated.body["template"]["language"]["code"] == "ca"
    assert "Tall d'aigua demà de 8 a 12." in templated.text and "\n" not in templated.text
    assert fake.refused == []  # nothing free-form was tried outside the window

    # the status notifications land on the outbox rows
    sent = await wait_rows(staff.db, lambda found: all(m.platform_message_id for m in found.values()))
    assert sent[inside].platform_message_id == free_form.id and sent[outside].platform_message_id == templated.id
    assert await fake.send_status(free_form, "delivered") == 200
    assert await fake.send_status(free_form, "read") == 200
    assert await fake.send_status(templated, "failed", [{"code": 131026, "title": "Message undeliverable"}]) == 200
    found = await wait_rows(staff.db, lambda f: f[inside].read_at is not None and f[outside].status == "unreachable")
    assert found[inside].delivered_at is not None and found[inside].status == "sent"
    assert "131026" in (found[outside].last_error or "")
    with session_scope(staff.db) as session:
        assert session.exec(select(Reporter).where(Reporter.sender_id == outside)).one().unreachable is True
        assert session.exec(select(Reporter).where(Reporter.sender_id == inside)).one().unreachable is False


async def test_throttling_and_refusals_are_handled_like_telegrams(
        tmp_path: Path, fake_whatsapp: FakeWhatsApp, aiohttp_server, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    caplog.set_level(logging.DEBUG)
    fake = fake_whatsapp
    server = await start_bot(tmp_path, fake, aiohttp_server)
    settings = server.app[SETTINGS]
    channel = server.app[CHANNELS]["whatsapp"]
    db = create_db_engine(settings.database_url)
    sender = subscriber(db, settings, PHONE, wrote_ago=timedelta(minutes=5))
    news = OutgoingMessage(text="El teu informe K7Q-4M2 ara està en curs.", custom={"kind": "status"})

    fake.fail_next(130429)  # the number's throughput: wait, every send
    outcome = await channel.push(sender, news)
    assert outcome.status == "retry" and outcome.retry_after and not outcome.recipient_only
    fake.fail_next(131056)  # too many to this citizen: wait, for them only
    outcome = await channel.push(sender, news)
    assert outcome.status == "retry" and outcome.retry_after and outcome.recipient_only
    outcome = await channel.push(sender, news)
    assert outcome.status == "sent" and outcome.platform_id == fake.to(PHONE)[-1].id

    # WhatsApp counts the window closed although we thought it open: the template goes instead
    fake.enforce_window = True
    fake.last_inbound[PHONE] = time.time() - 25 * 3600
    outcome = await channel.push(sender, news)
    assert outcome.status == "sent" and fake.to(PHONE)[-1].type == "template"
    assert fake.refused[-1] == (PHONE, 131047)
    with session_scope(db) as session:
        assert contacts.contact_for(session=session, sender_id=sender).last_inbound_at is None

    fake.fail_next(131026)  # undeliverable
    assert (await channel.push(sender, news)).status == "unreachable"

    # the outbox worker: a throttle answer is waited out without losing an attempt, then sent
    worker = server.app[OUTBOXES].workers["whatsapp"]
    assert worker.pacer.per_chat_interval == settings.whatsapp_per_user_interval_seconds
    assert worker.pacer.configured == settings.whatsapp_rate_per_second
    with session_scope(db) as session:
        reporter = session.exec(select(Reporter).where(Reporter.sender_id == sender)).one()
        from storage.outbox import OutgoingItem, enqueue

        enqueue(session=session, items=[OutgoingItem.to(reporter, dedupe_key="status:throttle", kind="status",
                                                        text="Tu informe K7Q-4M2 está en curso.")])
    before = len(fake.to(PHONE))
    fake.fail_next(130429)
    started = time.monotonic()
    worker.start()
    worker.wake()
    found = await wait_rows(db, lambda f: f[sender].status == "sent", timeout=40)
    assert time.monotonic() - started >= 1.5  # waited out the throttle (2 s)
    assert found[sender].attempts == 1 and found[sender].platform_message_id == fake.to(PHONE)[-1].id
    assert len(fake.to(PHONE)) == before + 1
    await worker.stop()
    no_phone_in(caplog)
    await server.close()


async def test_the_number_goes_with_erasure_and_retention(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, retention_days=30)
    upgrade_database(settings.database_url)
    db = create_db_engine(settings.database_url)
    key = pseudonym_key(settings)
    erased, idle, talking = (sender_of(phone, key) for phone in ("34600000001", "34600000002", "34600000003"))
    long_ago = utcnow() - timedelta(days=40)
    with session_scope(db) as session:
        for sender, phone, at in ((erased, "34600000001", utcnow()), (idle, "34600000002", long_ago),
                                  (talking, "34600000003", utcnow())):
            contacts.record_inbound(session=session, sender_id=sender, phone=phone, at=at)
        reporters.get_or_create_reporter(session=session, sender_id=erased, channel="whatsapp", locale="es")
        session.commit()
        session.execute(text("UPDATE whatsapp_contacts SET created_at = :at"),
                        {"at": long_ago.replace(tzinfo=None) if db.dialect.name == "sqlite" else long_ago})
        session.commit()
        # forget_me and the retention of reporters both erase through erase_reporter
        erasure.erase_reporter(session=session, sender_id=erased)
    context = JobContext(settings=settings, db=db, tracker_db=create_db_engine(settings.tracker_store_url),
                         catalogs=Catalogs.load(settings.locales_dir, settings.default_locale), desk=None)
    jobs.install(context)
    try:
        assert await jobs.SWEEPS["purge_idle_whatsapp_numbers"]() == 1  # the one silent for 40 days
    finally:
        jobs.uninstall(context)
    with session_scope(db) as session:
        left = [contact.sender_id for contact in session.exec(select(WhatsAppContact)).all()]
    assert left == [talking]


# --------------------------------------------------------------------------- with the engine


def choice(sent: Sent, part: str) -> str:
    return next(choice_id for choice_id, _ in sent.choices if part in choice_id)


@pytest.mark.engine
async def test_a_whole_report_in_spanish_with_buttons_a_location_and_a_photo_then_erasure(
        stack: Stack, fake_whatsapp: FakeWhatsApp, aiohttp_server, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    caplog.set_level(logging.DEBUG)
    fake = fake_whatsapp
    settings = app_settings(stack, **whatsapp_settings(fake))
    server = await aiohttp_server(create_app(settings))
    fake.webhook_url = str(server.make_url("/whatsapp/webhook"))
    sender = sender_of(PHONE, pseudonym_key(settings))

    await fake.send_text(PHONE, "me han robado la bicicleta esta mañana delante de mi casa, la tenía atada con candado")
    messages = await fake.settle(PHONE)
    asked_where = False
    for _ in range(12):
        last = messages[-1]
        ids = [choice_id for choice_id, _ in last.choices]
        if last.interactive.get("type") == "location_request_message":  # WhatsApp's own location button
            asked_where = True
            await fake.send_location(PHONE, 41.4036, 2.1590)
        elif any('"photos_done"' in i for i in ids):
            if not fake.downloads:
                await fake.send_image(PHONE, PNG)
            else:
                await fake.press(PHONE, last, choice(last, '"photos_done":"yes"'))
        elif any('"contact_mode"' in i for i in ids):
            await fake.press(PHONE, last, choice(last, '"contact_mode":"chat"'))
        elif "/affirm" in ids:
            await fake.press(PHONE, last, "/affirm")
            break
        else:
            await fake.send_text(PHONE, "hacia las nueve de la mañana")
        await fake.wait_for(PHONE, len(messages) + 1)
        messages = await fake.settle(PHONE)
    final = await fake.settle(PHONE)
    joined = "\n".join(m.text for m in final)
    ref = REF.search(joined)
    assert ref, [(m.text, m.choices) for m in final]
    assert "SHA-256" in joined  # the photo's fingerprint, as on every channel
    assert asked_where and fake.downloads, "the location request and the photo were used"
    assert any(m.interactive.get("type") == "button" for m in final)
    check_limits(final)
    assert fake.refused == []
    db = create_db_engine(settings.database_url)
    with session_scope(db) as session:
        case = case_store.get_case_for_sender(session=session, ref=ref.group(0), sender_id=sender)
        assert case is not None and case.channel == "whatsapp" and case.locale == "es"
        assert case.neighbourhood_name == "la Vila de Gràcia"
        assert len(attachments.get_attachments(session=session, case_id=case.id)) == 1
        assert session.get(WhatsAppContact, sender).phone == PHONE

    # "forget me": the confirmation still reaches the phone, then the number is gone everywhere
    await fake.send_text(PHONE, "borra todos mis datos personales")
    question = (await fake.settle(PHONE))[-1]
    before = len(fake.to(PHONE))
    await fake.press(PHONE, question, "/affirm")
    await fake.wait_for(PHONE, before + 1)
    with session_scope(db) as session:
        assert session.get(WhatsAppContact, sender) is None
        assert session.exec(select(Reporter).where(Reporter.sender_id == sender)).first() is None
    path = settings.database_url.removeprefix("sqlite:///")
    import sqlite3

    with sqlite3.connect(path) as connection:
        dump = "\n".join(connection.iterdump())
    assert PHONE not in dump and PHONE[2:] not in dump
    no_phone_in(caplog)
    await server.close()


@pytest.mark.engine
async def test_an_emergency_gets_112_first(stack: Stack, fake_whatsapp: FakeWhatsApp, aiohttp_server) -> None:  # noqa: F811
    fake = fake_whatsapp
    phone = "34699333444"
    settings = app_settings(stack, **whatsapp_settings(fake))
    server = await aiohttp_server(create_app(settings))
    fake.webhook_url = str(server.make_url("/whatsapp/webhook"))
    await fake.send_text(phone, "huele muchísimo a gas en toda la escalera de mi bloque en la calle Verdi desde hace un rato")
    answers = await fake.settle(phone)
    assert "112" in answers[0].text, [m.text for m in answers]
    assert answers[-1].interactive.get("type") == "button"  # the next step offered as reply buttons
    check_limits(answers)
    await server.close()


async def test_choices_are_drawn_within_whatsapp_limits(
        tmp_path: Path, fake_whatsapp: FakeWhatsApp, aiohttp_server) -> None:  # noqa: F811
    from bot.channels.base import Button

    fake = fake_whatsapp
    server = await start_bot(tmp_path, fake, aiohttp_server)
    settings = server.app[SETTINGS]
    db = create_db_engine(settings.database_url)
    sender = subscriber(db, settings, PHONE, wrote_ago=timedelta(minutes=1))
    districts = [Button(f"Districte de Sant Martí de Provençals {n}", f'/inform{{"district_code":"{n:02d}"}}')
                 for n in range(1, 13)]
    messages = [
        OutgoingMessage(text="¿Quieres enviarlo?", buttons=(Button("Sí, enviar", "/affirm"), Button("No", "/deny"))),
        OutgoingMessage(text="¿En qué distrito?", buttons=tuple(districts)),
        OutgoingMessage(text="¿Dónde ha pasado? Puedes compartir tu ubicación.", request="location"),
        OutgoingMessage(text="Aquí tienes todos los detalles de tu aviso, por orden. " * 25, buttons=(Button("Continuar", "/affirm"),)),
        OutgoingMessage(custom={"forget": True}),  # another channel's control: nothing is sent
    ]
    assert await server.app[CHANNELS]["whatsapp"].respond(sender, messages)
    sent = fake.to(PHONE)
    assert fake.refused == []
    assert [(m.type, m.interactive.get("type")) for m in sent] == [
        ("interactive", "button"), ("interactive", "list"), ("interactive", "list"),
        ("interactive", "location_request_message"), ("text", None), ("interactive", "button")]
    assert sent[0].choices == [("/affirm", "Sí, enviar"), ("/deny", "No")]
    rows = sent[1].choices + sent[2].choices
    assert [choice_id for choice_id, _ in rows] == [b.payload for b in districts]  # all twelve, in order
    assert len(sent[1].choices) == 10 and all(len(title) <= 24 for _, title in rows)
    first_row = sent[1].interactive["action"]["sections"][0]["rows"][0]
    assert first_row["title"].endswith("…") and first_row["description"] == districts[0].title
    assert sent[1].interactive["action"]["button"] == "Elegir"  # in the language of the question
    assert sent[2].text == "Más opciones:"
    assert sent[4].text.startswith("Aquí tienes") and sent[5].text == "Elegir"

    # a list row and a reply button come back as their payloads (the engine is down here: they
    # are kept, in order, for the engine)
    await fake.press(PHONE, sent[2], districts[11].payload)
    await fake.press(PHONE, sent[0], "/affirm")
    await fake.wait_for(PHONE, len(sent) + 2)
    with session_scope(db) as session:
        kept = session.exec(select(PendingMessage).where(PendingMessage.sender_id == sender)
                            .order_by(PendingMessage.id)).all()
        assert [row.text for row in kept] == [districts[11].payload, "/affirm"]
    await server.close()


def test_the_whatsapp_secrets_never_reach_a_log_line(tmp_path: Path) -> None:
    from common.logs import RedactingFormatter, secrets_of

    settings = make_settings(tmp_path, whatsapp_token=TOKEN, whatsapp_app_secret=APP_SECRET,
                             whatsapp_verify_token=VERIFY_TOKEN, whatsapp_phone_number_id=PHONE_NUMBER_ID)
    assert settings.whatsapp_enabled and "EAAG" not in repr(settings)
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "token %s secret %s verify %s",
                               (TOKEN, APP_SECRET, VERIFY_TOKEN), None)
    line = RedactingFormatter(secrets_of(settings)).format(record)
    assert TOKEN not in line and APP_SECRET not in line and VERIFY_TOKEN not in line and line.count("[redacted]") == 3


async def test_a_late_re_engagement_failure_sends_the_template(
        tmp_path: Path, fake_whatsapp: FakeWhatsApp, aiohttp_client) -> None:  # noqa: F811
    """WhatsApp may take a free-form message and report later that the window was closed
    (a failed status with 131047): the row goes again, as the template."""
    fake = fake_whatsapp
    staff: StaffApp = await start_staff_app(tmp_path, aiohttp_client, **whatsapp_settings(fake))
    fake.webhook_url = str(staff.client.make_url("/whatsapp/webhook"))
    sender = subscriber(staff.db, staff.settings, PHONE, wrote_ago=timedelta(hours=23))
    alert = {"neighbourhoods": ["06-31"], "severity": "info", "texts": {"es": "Fiesta mayor: calles cortadas."}}
    created = await staff.client.post("/api/v1/alerts", json=alert,
                                      headers={"Authorization": f"Bearer {staff.tokens['admin']}"})
    assert created.status == 201
    (free_form,) = await fake.wait_for(PHONE, 1)
    assert free_form.type == "text"
    await wait_rows(staff.db, lambda found: found[sender].platform_message_id == free_form.id)
    assert await fake.send_status(free_form, "failed", [{"code": 131047, "title": "Re-engagement message"}]) == 200
    again = (await fake.wait_for(PHONE, 2))[1]
    assert again.type == "template" and again.body["template"]["name"] == "barri_alert"
    assert "Fiesta mayor: calles cortadas." in again.text
    found = await wait_rows(staff.db, lambda f: f[sender].platform_message_id == again.id)
    assert found[sender].status == "sent"
    with session_scope(staff.db) as session:
        assert contacts.contact_for(session=session, sender_id=sender).last_inbound_at is None


async def test_an_oversize_photo_is_refused_before_it_is_downloaded(
        tmp_path: Path, fake_whatsapp: FakeWhatsApp, aiohttp_server) -> None:  # noqa: F811
    fake = fake_whatsapp
    server = await start_bot(tmp_path, fake, aiohttp_server, max_photo_bytes=1000)
    await fake.send_image(PHONE, PNG + b"\0" * 5000)
    (notice,) = await fake.wait_for(PHONE, 1)
    assert notice.text.startswith("That photo is too big.")
    assert fake.downloads == []  # its size was known from the media endpoint
    await server.close()
