"""Neutral outgoing messages drawn as WhatsApp Cloud API messages (the bodies without ``to``).

Choices become reply buttons (at most 3, titles of at most 20 characters) or, when there are
more, a list (at most 10 rows of at most 24 characters; longer titles are shortened and given
whole as the row's description). The engine's location question becomes WhatsApp's location
request. Outside the 24-hour window only a template may go: ``template`` puts the message into
the one body parameter of an approved template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.channels.base import Button, OutgoingMessage

TEXT_MAX = 4096
BODY_MAX = 1024  # an interactive message's body
BUTTONS_MAX, BUTTON_TITLE_MAX, BUTTON_ID_MAX = 3, 20, 256
ROWS_MAX, ROW_TITLE_MAX, ROW_ID_MAX, ROW_DESCRIPTION_MAX = 10, 24, 200, 72
LIST_BUTTON_MAX = 20
TEMPLATE_PARAMETER_MAX = 900  # the template's own words count against its body's 1024 too


@dataclass(frozen=True)
class Labels:
    """The channel's own words, in the citizen's language."""

    choose: str  # the list's button, and the body of choices that come without text
    more: str  # the body of a second list when there are more than ten choices


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def chunks(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at paragraph or line breaks
    where possible."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = max(text.rfind("\n\n", 0, limit), text.rfind("\n", 0, limit), text.rfind(" ", 0, limit))
        cut = cut if cut > limit // 2 else limit
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces


def plain(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"body": piece, "preview_url": False}} for piece in chunks(text, TEXT_MAX)]


def render(message: OutgoingMessage, labels: Labels) -> list[dict[str, Any]]:
    """What WhatsApp is sent for one message of the engine (nothing for a text-less control)."""
    text = message.text.strip()
    buttons = [button for button in message.buttons if button.payload and button.title]
    if not buttons and message.request != "location":
        return plain(text) if text else []
    # an interactive message's body is short: a long text goes before it on its own
    lead: list[dict[str, Any]] = []
    if len(text) > BODY_MAX:
        lead, text = plain(text), ""
    if not buttons:
        return lead + [{"type": "interactive", "interactive": {
            "type": "location_request_message", "body": {"text": text or labels.choose},
            "action": {"name": "send_location"}}}]
    if len(buttons) <= BUTTONS_MAX and all(len(b.payload) <= BUTTON_ID_MAX for b in buttons):
        return lead + [_reply_buttons(text or labels.choose, buttons)]
    rows = [button for button in buttons if len(button.payload) <= ROW_ID_MAX]
    lists = [_list(text or labels.choose if start == 0 else labels.more, rows[start:start + ROWS_MAX], labels)
             for start in range(0, len(rows), ROWS_MAX)]
    return lead + lists


def _reply_buttons(body: str, buttons: list[Button]) -> dict[str, Any]:
    return {"type": "interactive", "interactive": {
        "type": "button", "body": {"text": body},
        "action": {"buttons": [
            {"type": "reply", "reply": {"id": b.payload, "title": shorten(b.title, BUTTON_TITLE_MAX)}}
            for b in buttons]}}}


def _list(body: str, buttons: list[Button], labels: Labels) -> dict[str, Any]:
    rows = []
    for button in buttons:
        row = {"id": button.payload, "title": shorten(button.title, ROW_TITLE_MAX)}
        if len(button.title) > ROW_TITLE_MAX:  # the whole title stays readable under the short one
            row["description"] = shorten(button.title, ROW_DESCRIPTION_MAX)
        rows.append(row)
    return {"type": "interactive", "interactive": {
        "type": "list", "body": {"text": body},
        "action": {"button": shorten(labels.choose, LIST_BUTTON_MAX), "sections": [{"rows": rows}]}}}


def template(name: str, language: str, text: str) -> dict[str, Any]:
    """An approved template whose one body parameter carries ``text`` (WhatsApp refuses
    parameters with line breaks, tabs or more than four spaces in a row)."""
    parameter = re.sub(r"\s*\n\s*", " · ", text.strip())
    parameter = re.sub(r"[\t ]{2,}", " ", parameter)
    return {"type": "template", "template": {
        "name": name, "language": {"code": language},
        "components": [{"type": "body", "parameters": [
            {"type": "text", "text": shorten(parameter, TEMPLATE_PARAMETER_MAX)}]}]}}
