"""What every channel does the same way with photos and locations."""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from bot.ratelimit import Verdict
from storage import attachments as attachment_store
from storage.db import run_storage
from storage.errors import TooManyPendingAttachments

if TYPE_CHECKING:
    from bot.engine import Conversations

PHOTO_SIGNATURES = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
}


class PhotoRejected(Exception):
    """A photo we will not store; ``key`` names the citizen's notice (ADAPTER_MESSAGES)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def sniff_image(head: bytes) -> str | None:
    """The image type from its first bytes; what the client claims is not trusted."""
    for signature, mime in PHOTO_SIGNATURES.items():
        if head.startswith(signature):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


async def store_photo(db: Engine, sender_id: str, data: bytes, *, max_bytes: int, max_pending: int) -> str:
    """Keep a photo, without its metadata, as a pending attachment of this sender; returns its
    id. Refused (PhotoRejected) when too big, not a well-formed image, or when the sender already
    has ``max_pending`` photos waiting for a report. The recorded SHA-256 is of ``data`` as sent."""
    if len(data) > max_bytes:
        raise PhotoRejected("photo_too_big")
    mime = sniff_image(data[:16])
    if mime is None:
        raise PhotoRejected("photo_type")

    stored = await asyncio.to_thread(strip_metadata, data)
    try:
        attachment = await run_storage(db, attachment_store.add_pending_attachment, sender_id=sender_id, data=stored,
                                       mime_type=mime, sent_sha256=hashlib.sha256(data).hexdigest(),
                                       max_pending=max_pending)
    except TooManyPendingAttachments:
        raise PhotoRejected("too_many_photos") from None
    return str(attachment.id)


async def pending_photos(db: Engine, sender_id: str) -> int:
    """How many photos of this sender wait for a report (so a refused one is not even fetched)."""
    return await run_storage(db, attachment_store.count_pending_attachments, sender_id=sender_id)


async def admit_photo(conversations: Conversations, db: Engine, sender_id: str, most: int,
                      notice: Callable[[str], Awaitable[None]]) -> bool:
    """Every limit before a photo is fetched or stored: the citizen's message rate (False, and
    ``notice("rate_limited")`` the first time), then their pending photos (PhotoRejected)."""
    verdict = await conversations.admit(sender_id)
    if verdict is not Verdict.ALLOW:
        if verdict is Verdict.NOTIFY:
            await notice("rate_limited")
        return False
    if await pending_photos(db, sender_id) >= most:
        raise PhotoRejected("too_many_photos")
    return True


def photo_payload(attachment_id: str) -> str:
    return "/inform" + json.dumps({"photo": attachment_id})


def location_payload(latitude: float, longitude: float) -> str | None:
    """The engine payload for a shared location, or None when it is not a place on Earth."""
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None
    return "/inform" + json.dumps({"latitude": round(latitude, 6), "longitude": round(longitude, 6)})


# --------------------------------------------------------------------------- metadata
# Phones write where a photo was taken (GPS), the device and often the owner's name into it.
# Stored photos keep only what drawing them needs; the image data itself is copied byte for
# byte (nothing is re-encoded, so no quality is lost and no decoder runs on a stranger's file).

_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length (TEM, RST0-7)
_EXIF_ORIENTATION = 0x0112


def strip_metadata(data: bytes) -> bytes:
    """The photo without EXIF, XMP, IPTC, comments, text chunks or anything after its end.

    Raises PhotoRejected("photo_type") when the file is not a well-formed JPEG, PNG or WebP.
    """
    try:
        if data.startswith(b"\xff\xd8\xff"):
            return _strip_jpeg(data)
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _strip_png(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _strip_webp(data)
    except (IndexError, ValueError, struct.error):
        pass
    raise PhotoRejected("photo_type")


def _strip_jpeg(data: bytes) -> bytes:
    kept = [b"\xff\xd8"]
    orientation: int | None = None
    pos = 2
    while True:
        if data[pos] != 0xFF:
            raise ValueError("not a marker")
        while data[pos] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # end of image: whatever follows (e.g. a motion photo's video) goes
            kept.append(b"\xff\xd9")
            break
        if marker in _JPEG_STANDALONE:
            kept.append(bytes((0xFF, marker)))
            continue
        (length,) = struct.unpack(">H", data[pos:pos + 2])
        if length < 2 or pos + length > len(data):
            raise ValueError("segment overruns the file")
        payload = data[pos + 2:pos + length]
        segment = bytes((0xFF, marker)) + data[pos:pos + length]
        pos += length
        if marker == 0xE1 and payload.startswith(b"Exif\0\0") and orientation is None:
            try:
                orientation = _exif_orientation(payload[6:])
            except (IndexError, struct.error):  # a camera's broken EXIF: the photo is still good
                orientation = None
        if _keep_jpeg_segment(marker, payload):
            kept.append(segment)
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next real marker
            end = _scan_end(data, pos)
            kept.append(data[pos:end])
            pos = end
    if orientation not in (None, 1):
        # keep which way up the photo is, and nothing else: one IFD entry
        exif = (b"Exif\0\0MM\0*" + struct.pack(">IH", 8, 1)
                + struct.pack(">HHIH", _EXIF_ORIENTATION, 3, 1, orientation) + b"\0\0" + struct.pack(">I", 0))
        app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
        kept.insert(2 if len(kept) > 1 and kept[1].startswith(b"\xff\xe0") else 1, app1)
    if kept[-1] != b"\xff\xd9":
        raise ValueError("no end of image")
    return b"".join(kept)


def _keep_jpeg_segment(marker: int, payload: bytes) -> bool:
    if marker == 0xFE:  # comment
        return False
    if 0xE0 <= marker <= 0xEF:  # application segments: only those that change how it is drawn
        return ((marker == 0xE0 and payload.startswith(b"JFIF\0"))
                or (marker == 0xE2 and payload.startswith(b"ICC_PROFILE\0"))
                or (marker == 0xEE and payload.startswith(b"Adobe")))
    return True  # tables, frame and scan headers


def _scan_end(data: bytes, pos: int) -> int:
    """Where the entropy-coded data that starts at ``pos`` ends: at the next marker that is
    neither a stuffed 0xFF00 nor a restart marker."""
    while True:
        pos = data.index(b"\xff", pos)
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            pos += 1
            continue
        return pos


def _exif_orientation(tiff: bytes) -> int | None:
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return None
    (ifd,) = struct.unpack(order + "I", tiff[4:8])
    (count,) = struct.unpack(order + "H", tiff[ifd:ifd + 2])
    for entry in range(ifd + 2, ifd + 2 + 12 * min(count, 512), 12):
        tag, kind = struct.unpack(order + "HH", tiff[entry:entry + 4])
        if tag == _EXIF_ORIENTATION and kind == 3:
            (value,) = struct.unpack(order + "H", tiff[entry + 8:entry + 10])
            return value if 1 <= value <= 8 else None
    return None


# chunks needed to draw a PNG (or an APNG) the way it was meant to look
_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT",
             b"bKGD", b"pHYs", b"cICP", b"acTL", b"fcTL", b"fdAT"}


def _strip_png(data: bytes) -> bytes:
    kept = [data[:8]]
    pos = 8
    while True:
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise ValueError("chunk overruns the file")
        if kind in _PNG_KEEP:
            kept.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            return b"".join(kept)


_WEBP_DROP = {b"EXIF", b"XMP "}
_VP8X_METADATA_FLAGS = 0b0000_1100  # "has EXIF", "has XMP"


def _strip_webp(data: bytes) -> bytes:
    (riff_size,) = struct.unpack("<I", data[4:8])
    end = 8 + riff_size
    if end > len(data):
        raise ValueError("RIFF overruns the file")
    kept: list[bytes] = []
    pos = 12
    while pos < end:
        kind = data[pos:pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4:pos + 8])
        chunk_end = pos + 8 + size + (size & 1)
        if chunk_end > end:
            raise ValueError("chunk overruns the file")
        chunk = data[pos:chunk_end]
        if kind == b"VP8X":
            chunk = chunk[:8] + bytes((chunk[8] & ~_VP8X_METADATA_FLAGS & 0xFF,)) + chunk[9:]
        if kind not in _WEBP_DROP:
            kept.append(chunk)
        pos = chunk_end
    if not kept:
        raise ValueError("no image")
    body = b"WEBP" + b"".join(kept)
    return b"RIFF" + struct.pack("<I", len(body)) + body
