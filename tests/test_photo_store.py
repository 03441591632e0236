"""Nobody can fill the disk with photos, and stored photos keep no location or camera details.

Limits are checked before anything is stored (the citizen's message rate, the per-report
maximum of pending photos); abandoned pending photos are purged by one of the leader's sweeps;
JPEG, PNG and WebP photos are stored without their metadata, losslessly (the image data is
untouched), while the receipt's SHA-256 is of the file the citizen sent.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import Engine, update
from sqlmodel import col, select

from bot import jobs
from bot.app import create_app
from bot.channels.media import PhotoRejected, strip_metadata
from storage import attachments as attachment_store
from storage import cases as case_store
from storage.db import create_db_engine, session_scope
from storage.migrate import upgrade_database
from storage.models import Attachment, AttachmentData, CaseCreate, utcnow
from tests.conftest import free_port, make_settings
from tests.photos import IDENTIFYING, JPEG, PNG, WEBP
from tests.telegram_server import FakeTelegram

pytest.register_assert_rewrite("tests.scheduling")
pytest_plugins = ("tests.scheduling",)

TOO_MANY_EN = "That's the maximum of 2 photos for one report."


# --------------------------------------------------------------------------- metadata


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of each segment up to the start of scan, then (0xDA, the rest)."""
    segments, pos = [], 2
    while True:
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker == 0xDA:
            segments.append((marker, data[pos + 2:]))
            return segments
        segments.append((marker, data[pos + 4:pos + 2 + length]))
        pos += 2 + length


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return chunks


def webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 12
    while pos < len(data):
        size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        chunks.append((data[pos:pos + 4], data[pos + 8:pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return chunks


def test_jpeg_keeps_its_image_and_orientation_but_no_camera_gps_or_comment() -> None:
    assert all(word in JPEG for word in (b"Pixelphone", b"Verdi"))  # the fixture carries them
    stripped = strip_metadata(JPEG)
    assert not any(word in stripped for word in IDENTIFYING)
    before, after = jpeg_segments(JPEG), jpeg_segments(stripped)
    image = [(m, p) for m, p in before if not (0xE1 <= m <= 0xEF or m == 0xFE)]
    assert [(m, p) for m, p in after if m != 0xE1] == image  # every image segment, byte for byte
    exif = [p for m, p in after if m == 0xE1]
    assert len(exif) == 1 and exif[0].startswith(b"Exif\0\0MM\0*")
    assert len(exif[0]) == 6 + 8 + 2 + 12 + 4  # one IFD entry: the orientation, nothing else
    assert struct.unpack(">HHIH", exif[0][16:26]) == (0x0112, 3, 1, 6)


def test_a_jpeg_with_a_broken_exif_block_is_kept_without_it() -> None:
    broken = JPEG.replace(b"MM\0*\0\0\0\x08", b"MM\0*\0\0\xff\x08")  # IFD offset past the end
    stripped = strip_metadata(broken)
    assert not any(word in stripped for word in IDENTIFYING)
    assert not [m for m, _ in jpeg_segments(stripped) if m == 0xE1]  # no orientation could be read


def test_png_keeps_pixels_and_drops_text_and_exif_chunks() -> None:
    stripped = strip_metadata(PNG)
    assert not any(word in stripped for word in IDENTIFYING)
    kinds = [kind for kind, _ in png_chunks(stripped)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    assert not {b"tEXt", b"iTXt", b"zTXt", b"eXIf"} & set(kinds)
    assert [c for c in png_chunks(PNG) if c[0] in (b"IHDR", b"IDAT")] == \
        [c for c in png_chunks(stripped) if c[0] in (b"IHDR", b"IDAT")]


def test_webp_drops_exif_and_says_so_in_its_header() -> None:
    stripped = strip_metadata(WEBP)
    assert not any(word in stripped for word in IDENTIFYING)
    assert struct.unpack("<I", stripped[4:8])[0] == len(stripped) - 8  # the RIFF size is right
    chunks = dict(webp_chunks(stripped))
    assert b"EXIF" not in chunks and b"XMP " not in chunks
    assert chunks[b"VP8X"][0] & 0b1100 == 0  # the "has EXIF / XMP" flags are cleared
    assert chunks[b"VP8L"] == dict(webp_chunks(WEBP))[b"VP8L"]


@pytest.mark.parametrize("broken", [JPEG[:300], PNG[:60], WEBP[:40], b"\xff\xd8\xff" + b"0" * 100],
                         ids=["cut-jpeg", "cut-png", "cut-webp", "jpeg-signature-only"])
def test_a_broken_image_is_refused_not_stored_as_is(broken: bytes) -> None:
    with pytest.raises(PhotoRejected) as refused:
        strip_metadata(broken)
    assert refused.value.key == "photo_type"


# --------------------------------------------------------------------------- web chat uploads


class WebChat:
    def __init__(self, client: Any, db: Engine) -> None:
        self.client = client
        self.db = db

    async def session(self, locale: str = "en-GB") -> tuple[Any, str, str]:
        ws = await self.client.ws_connect("/webchat/ws")
        await ws.send_json({"type": "hello", "session": None, "locale": locale})
        welcome = await ws.receive_json(timeout=5)
        return ws, welcome["session"], welcome["sender"]

    async def upload(self, token: str, data: bytes) -> tuple[int, dict[str, Any]]:
        body = aiohttp.FormData()
        body.add_field("photo", data, filename="photo.jpg", content_type="image/jpeg")
        response = await self.client.post("/webchat/upload", data=body, headers={"Authorization": f"Bearer {token}"})
        return response.status, await response.json()

    def pending(self, sender: str) -> list[tuple[Attachment, bytes]]:
        with session_scope(self.db) as session:
            rows = session.exec(select(Attachment, AttachmentData)
                                .where(Attachment.owner_sender_id == sender, col(Attachment.case_id).is_(None))
                                .where(AttachmentData.attachment_id == Attachment.id)).all()
            return [(attachment, bytes(data.data)) for attachment, data in rows]


@pytest.fixture
async def webchat(tmp_path: Path, aiohttp_client) -> AsyncIterator[WebChat]:
    # the engine is not running: messages are kept for later, which is all these tests need
    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port(), max_photos_per_report=2,
                             max_messages_per_minute=3)
    upgrade_database(settings.database_url)
    db = create_db_engine(settings.database_url)
    yield WebChat(await aiohttp_client(create_app(settings)), db)
    db.dispose()


async def test_a_web_upload_is_stored_without_metadata_and_hashed_as_sent(webchat: WebChat) -> None:
    ws, token, sender = await webchat.session()
    status, _ = await webchat.upload(token, JPEG)
    assert status == 200
    [(attachment, stored)] = webchat.pending(sender)
    assert stored == strip_metadata(JPEG) and not any(word in stored for word in IDENTIFYING)
    assert attachment.sha256 == hashlib.sha256(JPEG).hexdigest()  # the receipt is of what was sent
    assert attachment.size == len(stored)
    await ws.close()


async def test_pending_photos_stop_at_the_per_report_maximum(webchat: WebChat) -> None:
    ws, token, sender = await webchat.session()
    assert (await webchat.upload(token, PNG))[0] == 200
    assert (await webchat.upload(token, WEBP))[0] == 200
    status, answer = await webchat.upload(token, JPEG)
    assert status == 409 and answer["error"] == TOO_MANY_EN
    assert len(webchat.pending(sender)) == 2
    await ws.close()


async def test_the_citizens_message_limit_is_checked_before_a_photo_is_stored(webchat: WebChat) -> None:
    ws, token, sender = await webchat.session()
    for _ in range(3):  # three messages: the citizen's limit in this minute
        await ws.send_json({"type": "text", "text": "hello there"})
    for _ in range(20):  # the kept-for-later notices
        frame = await ws.receive_json(timeout=10)
        if frame["type"] == "typing" and frame["on"] is False:
            break
    statuses = [(await webchat.upload(token, PNG))[0] for _ in range(3)]
    assert 429 in statuses and 200 not in statuses[statuses.index(429):]
    assert len(webchat.pending(sender)) == statuses.count(200) < 2
    await ws.close()


# --------------------------------------------------------------------------- Telegram


async def test_a_telegram_photo_over_the_maximum_is_not_even_downloaded(tmp_path: Path, aiohttp_server) -> None:
    async with FakeTelegram() as fake:
        settings = make_settings(tmp_path, telegram_token="123:ABC", telegram_api_url=fake.base_url,
                                 rasa_port=free_port(), actions_port=free_port(), max_photos_per_report=1)
        upgrade_database(settings.database_url)
        server = await aiohttp_server(create_app(settings))
        fake.send_photo(4242, PNG, caption=None, language_code="en")
        await fake.wait_until(lambda: len(fake.downloads) == 1, timeout=20)
        fake.send_photo(4242, JPEG, caption=None, language_code="en")
        await fake.wait_until(lambda: any("maximum of 1 photos" in m.get("text", "")
                                          for m in fake.sent_messages(4242)), timeout=20)
        assert len(fake.downloads) == 1
        db = create_db_engine(settings.database_url)
        with session_scope(db) as session:
            stored = session.exec(select(Attachment).where(Attachment.owner_sender_id == "telegram:4242")).all()
            assert len(stored) == 1
        db.dispose()
        await server.close()


# --------------------------------------------------------------------------- the purge sweep


async def test_abandoned_pending_photos_are_purged_by_a_leader_sweep(db: Engine, context: jobs.JobContext) -> None:
    assert "purge_stale_attachments" in jobs.SWEEPS
    with session_scope(db) as session:
        old = attachment_store.add_pending_attachment(session=session, sender_id="web:gone", data=PNG,
                                                mime_type="image/png")
        fresh = attachment_store.add_pending_attachment(session=session, sender_id="web:typing", data=PNG,
                                                  mime_type="image/png")
        filed = attachment_store.add_pending_attachment(session=session, sender_id="web:filed", data=PNG,
                                                  mime_type="image/png")
        case_store.create_case(session=session, case_in=CaseCreate(
            sender_id="web:filed", channel="web", locale="en", category="vandalism",
            description="the bus stop glass was smashed", contact_mode="anonymous", attachment_ids=[filed.id]))
        long_ago = utcnow() - timedelta(seconds=context.settings.pending_photos_max_age_seconds + 60)
        session.execute(update(Attachment).where(col(Attachment.id).in_([old.id, filed.id]))
                        .values(created_at=long_ago))
        session.commit()
        old_id, fresh_id, filed_id = old.id, fresh.id, filed.id
    assert await jobs.SWEEPS["purge_stale_attachments"]() == 1
    with session_scope(db) as session:
        assert session.get(Attachment, old_id) is None and session.get(AttachmentData, old_id) is None
        assert session.get(Attachment, fresh_id) is not None  # a report still being made
        assert session.get(Attachment, filed_id) is not None  # a filed case's photo is not pending
