"""What every channel does the same way with photos and locations."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import Engine

from storage import cases as case_store
from storage.db import session_scope

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


async def store_photo(db: Engine, sender_id: str, data: bytes, max_bytes: int) -> str:
    """Keep a photo as a pending attachment of this sender; returns its id."""
    if len(data) > max_bytes:
        raise PhotoRejected("photo_too_big")
    mime = sniff_image(data[:16])
    if mime is None:
        raise PhotoRejected("photo_type")

    def store() -> str:
        with session_scope(db) as session:
            attachment = case_store.add_pending_attachment(
                session=session, sender_id=sender_id, data=data, mime_type=mime
            )
            return str(attachment.id)

    return await asyncio.to_thread(store)


def photo_payload(attachment_id: str) -> str:
    return "/inform" + json.dumps({"photo": attachment_id})


def location_payload(latitude: float, longitude: float) -> str | None:
    """The engine payload for a shared location, or None when it is not a place on Earth."""
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None
    return "/inform" + json.dumps({"latitude": round(latitude, 6), "longitude": round(longitude, 6)})
