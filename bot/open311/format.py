"""Open311 answers: every resource in JSON or XML (the spec's required format) by its extension,
and errors as the spec's list in the same format (``[{"code": 400, "description": "..."}]`` or
``<errors><error><code>400</code><description>...</description></error></errors>``) with the
matching HTTP status. XML is always built with ``xml.etree.ElementTree``, never by pasting
strings, and characters XML 1.0 cannot carry are dropped."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from storage.errors import DatabaseUnavailable

FORMATS = ("json", "xml")

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


class Problem(Exception):
    """An answer in the spec's error format."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def clean(text: str) -> str:
    """The text without the characters XML 1.0 cannot hold (control characters, lone surrogates)."""
    return _XML_ILLEGAL.sub("", text)


def _xml_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return clean(str(value))


def _add_xml(parent: ET.Element, name: str, value: Any) -> None:
    element = ET.SubElement(parent, name)
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _add_xml(element, key, inner)
    elif isinstance(value, list):
        for item in value:
            _add_xml(element, name.removesuffix("s") or "item", item)
    else:
        element.text = _xml_text(value)


def _xml_response(root: ET.Element, status: int = 200) -> web.Response:
    body = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    return web.Response(body=body, status=status, content_type="text/xml", charset="utf-8")


def _json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False), status=status,
                        content_type="application/json", charset="utf-8")


def render_list(fmt: str, root: str, item: str, items: Sequence[Mapping[str, Any]], status: int = 200) -> web.Response:
    """A list of objects: a JSON array, or ``<root><item>...</item>...</root>``."""
    if fmt == "json":
        return _json_response(list(items), status)
    element = ET.Element(root)
    for entry in items:
        _add_xml(element, item, entry)
    return _xml_response(element, status)


def render_object(fmt: str, root: str, data: Mapping[str, Any]) -> web.Response:
    if fmt == "json":
        return _json_response(dict(data))
    element = ET.Element(root)
    for key, value in data.items():
        _add_xml(element, key, value)
    return _xml_response(element)


def render_error(fmt: str, status: int, description: str) -> web.Response:
    return render_list(fmt if fmt in FORMATS else "json", "errors", "error",
                       [{"code": status, "description": description}], status)


def formatted(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Check the extension, pass the format on, and answer problems in that format."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        fmt = request.match_info.get("fmt", "")
        if fmt not in FORMATS:
            return render_error("json", 404, f"unknown format {fmt[:20]!r}: use .json or .xml")
        try:
            return await handler(request, fmt)
        except Problem as problem:
            return render_error(fmt, problem.status, problem.description)
        except DatabaseUnavailable:
            return render_error(fmt, 503, "the service is temporarily unavailable")

    wrapped.__name__ = f"open311_{handler.__name__}"
    wrapped.__doc__ = handler.__doc__
    return wrapped
