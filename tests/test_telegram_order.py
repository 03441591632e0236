"""Telegram updates: one chat strictly in order, different chats at the same time."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from bot.channels.telegram.channel import PerChatUpdateProcessor


async def test_one_chat_in_order_and_chats_concurrently() -> None:
    processor = PerChatUpdateProcessor(max_concurrent_updates=16)
    log: list[tuple[str, int, str]] = []

    async def handle(chat: int, number: int, seconds: float) -> None:
        log.append(("start", chat, str(number)))
        await asyncio.sleep(seconds)
        log.append(("end", chat, str(number)))

    def update(chat: int) -> SimpleNamespace:
        return SimpleNamespace(effective_chat=SimpleNamespace(id=chat))

    await asyncio.gather(
        processor.process_update(update(1), handle(1, 1, 0.3)),  # slow first message of chat 1
        processor.process_update(update(1), handle(1, 2, 0.0)),
        processor.process_update(update(2), handle(2, 1, 0.3)),
    )
    chat_one = [entry for entry in log if entry[1] == 1]
    assert chat_one == [("start", 1, "1"), ("end", 1, "1"), ("start", 1, "2"), ("end", 1, "2")]
    assert log.index(("start", 2, "1")) < log.index(("end", 1, "1"))  # chat 2 did not wait for chat 1
