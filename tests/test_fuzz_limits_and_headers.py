"""Request size limits and security headers on a real bot service (engine not needed)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from bot.app import create_app
from tests.conftest import StaffApp, free_port, make_settings, start_staff_app

LIMIT = 64 * 1024


@pytest.fixture
async def staff(tmp_path: Path, aiohttp_client) -> StaffApp:
    return await start_staff_app(tmp_path, aiohttp_client)


def assert_security_headers(response: aiohttp.ClientResponse) -> None:
    policy = response.headers["Content-Security-Policy"]
    directives = dict((part.strip().split(" ", 1) + [""])[:2] for part in policy.split(";") if part.strip())
    assert "'unsafe-inline'" not in directives.get("script-src", directives.get("default-src", ""))
    assert "'unsafe-eval'" not in policy
    assert "frame-ancestors" in directives and directives["frame-ancestors"] in ("'none'", "'self'")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_every_page_and_every_error_has_the_security_headers(staff: StaffApp) -> None:
    client = staff.client
    auth = {"Authorization": f"Bearer {staff.tokens['dispatcher']}"}
    requests = [
        ("GET", "/", {}, 200), ("GET", "/?lang=es", {}, 200), ("GET", "/static/webchat/chat.js", {}, 200),
        ("GET", "/desk/login", {}, 200), ("GET", "/desk/", {}, 303), ("GET", "/desk/map", {}, 303),
        ("GET", "/api/v1/openapi.json", {}, 200), ("GET", "/api/v1/cases", auth, 200),
        ("GET", "/api/v1/cases", {}, 401), ("GET", "/api/v1/cases/NOP-NOP", auth, 404),
        ("GET", "/open311/v2/services.json", {}, 200), ("GET", "/open311/v2/services.xml", {}, 200),
        ("GET", "/no/such/page", {}, 404), ("GET", "/desk/no-such-page", {}, 404),
        ("GET", "/static/webchat/../../settings.py", {}, 404), ("POST", "/healthz", {}, 405),
        ("DELETE", "/", {}, 405), ("GET", "/healthz", {}, 503),
    ]
    for method, path, headers, status in requests:
        response = await client.request(method, path, headers=headers, allow_redirects=False)
        assert response.status == status, (method, path, response.status)
        assert_security_headers(response)


async def test_an_unexpected_error_page_has_the_headers_too(tmp_path: Path, aiohttp_client) -> None:
    app = create_app(make_settings(tmp_path))

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app.router.add_get("/broken-for-the-test", broken)
    client = await aiohttp_client(app)
    response = await client.get("/broken-for-the-test")
    assert response.status == 500
    assert_security_headers(response)
    assert "a bug" not in await response.text()


async def test_the_desk_is_served_with_the_headers_after_sign_in(staff: StaffApp) -> None:
    client = staff.client
    page = await client.get("/desk/login")
    body = await page.text()
    assert "<script>" not in body and " on" + "click=" not in body
    assert_security_headers(page)


async def test_a_cross_origin_socket_is_refused_and_same_origin_is_not(tmp_path: Path, aiohttp_client) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path)))
    for origin in ("https://evil.example", "null", f"http://{client.host}:{client.port}.evil.example"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/webchat/ws", headers={"Origin": origin})
        assert refused.value.status == 403
    own = await client.ws_connect("/webchat/ws", headers={"Origin": f"http://{client.host}:{client.port}"})
    await own.send_json({"type": "hello", "session": None, "locale": "en"})
    assert (await own.receive_json(timeout=5))["type"] == "welcome"
    await own.close()


async def test_json_bodies_of_the_staff_api_are_limited(staff: StaffApp) -> None:
    client = staff.client
    auth = {"Authorization": f"Bearer {staff.tokens['dispatcher']}", "Content-Type": "application/json"}
    big = json.dumps({"internal_note": "x" * (LIMIT + 10)})
    response = await client.patch("/api/v1/cases/ABC-DEF", data=big, headers=auth)
    assert response.status == 413
    assert "too large" in (await response.json())["error"]
    assert_security_headers(response)

    async def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(20):
            yield b'{"text": "' + b"y" * 8192
        yield b'"}'

    response = await client.post("/api/v1/cases/ABC-DEF/chat", data=chunks(), headers=auth)
    assert response.status == 413
    assert "too large" in (await response.json())["error"]
    # a normal body still works
    response = await client.patch("/api/v1/cases/ABC-DEF", json={"priority": "high"}, headers=auth)
    assert response.status == 404


async def test_open311_bodies_are_limited_in_the_requested_format(staff: StaffApp) -> None:
    client = staff.client
    form = {"service_code": "noise", "lat": "41.38", "long": "2.17", "description": "z" * (LIMIT + 1),
            "api_key": staff.tokens["dispatcher"]}
    response = await client.post("/open311/v2/requests.xml", data=form)
    assert response.status == 413
    root = ET.fromstring(await response.read())
    assert root.tag == "errors" and root.findtext("error/code") == "413"
    response = await client.post("/open311/v2/requests.json", data=form)
    assert response.status == 413
    [problem] = await response.json()
    assert problem["code"] == 413 and "too large" in problem["description"]


async def test_desk_forms_are_limited(staff: StaffApp) -> None:
    response = await staff.client.post("/desk/login", data={"name": "a" * (LIMIT + 1), "password": "b"})
    assert response.status == 413


async def test_uploads_over_the_photo_limit_are_refused_in_the_citizens_language(
    tmp_path: Path, aiohttp_client
) -> None:
    from storage.migrate import upgrade_database

    settings = make_settings(tmp_path, rasa_port=free_port(), actions_port=free_port(), max_photo_bytes=100_000)
    upgrade_database(settings.database_url)
    client = await aiohttp_client(create_app(settings))
    ws = await client.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello", "session": None, "locale": "ca-ES"})
    token = (await ws.receive_json(timeout=5))["session"]
    body = aiohttp.FormData()
    body.add_field("photo", b"\xff\xd8\xff" + b"0" * 2_000_000, filename="x.jpg", content_type="image/jpeg")
    response = await client.post("/webchat/upload", data=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 413
    assert "MB" in (await response.json())["error"] and "massa" in (await response.json())["error"].lower()
    await ws.close()


async def test_an_oversized_socket_frame_closes_that_socket_only(tmp_path: Path, aiohttp_client) -> None:
    client = await aiohttp_client(create_app(make_settings(tmp_path, rasa_port=free_port(),
                                                           actions_port=free_port())))
    other = await client.ws_connect("/webchat/ws")
    await other.send_json({"type": "hello", "session": None, "locale": "en"})
    assert (await other.receive_json(timeout=5))["type"] == "welcome"

    ws = await client.ws_connect("/webchat/ws")
    await ws.send_json({"type": "hello", "session": None, "locale": "en"})
    await ws.receive_json(timeout=5)
    await ws.send_str(json.dumps({"type": "text", "text": "a" * (LIMIT + 1)}))
    closing = await ws.receive(timeout=5)
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG

    # the longest allowed message fits in a frame, even JSON-escaped, and gets the clear notice
    await other.send_str(json.dumps({"type": "text", "text": "😀" * 4001}))
    frames = [await other.receive_json(timeout=5)]
    assert frames[0]["type"] == "error" and "4000" in frames[0]["text"]
    await other.close()
