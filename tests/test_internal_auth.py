"""Issue #13, internal services: the engine's REST channel and HTTP API and the action server's
/webhook and /nlg answer only the holder of the shared secret (RASA_TOKEN), checked against the
real engine and action server; nothing starts without the secret; nothing secret is on a
command line; the internal services listen on loopback by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import create_app
from bot.devserver import ENGINE_VENV, engine_command, write_engine_endpoints
from common.settings import PROJECT_ROOT, MissingSecret, Settings, load_settings
from dialogues.actions.server import create_actions_app
from tests.conftest import TEST_RASA_TOKEN, TEST_SECRET, Stack, make_settings

ATTACKER = "telegram:424242"


def rest(stack: Stack) -> str:
    return f"{stack.settings.engine_url}/webhooks/rest/webhook"


async def test_the_engines_rest_channel_refuses_messages_without_the_secret(stack: Stack) -> None:
    body = {"sender": ATTACKER, "message": "/forget_me", "metadata": {}}
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                        {"Authorization": TEST_RASA_TOKEN}, {"Authorization": f"Bearer {TEST_RASA_TOKEN}x"}):
            async with http.post(rest(stack), json=body, headers=headers) as response:
                assert response.status == 401, headers
        # nothing reached the conversation: the engine has no tracker for that sender
        tracker_url = f"{stack.settings.engine_url}/conversations/{ATTACKER}/tracker"
        async with http.get(tracker_url, params={"token": TEST_RASA_TOKEN}) as response:
            assert response.status == 200
            assert [e for e in (await response.json())["events"] if e["event"] == "user"] == []
        # the bot service's way in: the secret as a bearer token; the answer needs the action
        # server's NLG, so this also proves the engine sends the secret there
        own = {"Authorization": f"Bearer {TEST_RASA_TOKEN}"}
        async with http.post(rest(stack), json={"sender": "web:internal-auth", "message": "hola"},
                             headers=own) as response:
            assert response.status == 200
            answers = await response.json()
        assert answers and all(a.get("text") or a.get("buttons") or a.get("custom") for a in answers)
        # malformed bodies get a clear 400, not a 500
        async with http.post(rest(stack), json=["not", "an", "object"], headers=own) as response:
            assert response.status == 400
        async with http.post(rest(stack), json={"sender": 7, "message": "hola"}, headers=own) as response:
            assert response.status == 400


async def test_the_engines_http_api_needs_the_secret(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        for path in (f"/conversations/{ATTACKER}/tracker", "/status"):
            async with http.get(stack.settings.engine_url + path) as response:
                assert response.status == 401, path
        async with http.post(f"{stack.settings.engine_url}/model/parse", json={"text": "hola"}) as response:
            assert response.status == 401
        async with http.post(f"{stack.settings.engine_url}/model/parse", json={"text": "hola"},
                             params={"token": TEST_RASA_TOKEN}) as response:
            assert response.status == 200


def forget_me_call(sender: str) -> dict[str, Any]:
    return {"next_action": "action_forget_me", "sender_id": sender, "version": "3.6.21",
            "tracker": {"sender_id": sender, "slots": {}, "events": [], "latest_message": {}},
            "domain": {}}


async def test_the_action_server_answers_only_the_engine(stack: Stack) -> None:
    base = stack.settings.action_server_url
    async with aiohttp.ClientSession() as http:
        for path, body in (("/webhook", forget_me_call(ATTACKER)),
                           ("/nlg", {"response": "utter_greet", "tracker": {}, "arguments": {}})):
            for headers in ({}, {"Authorization": "Bearer not-the-token-0123456789"}):
                async with http.post(base + path, json=body, headers=headers) as response:
                    assert response.status == 401, (path, headers)
                    assert "error" in await response.json()
        async with http.get(base + "/actions") as response:
            assert response.status == 401
        async with http.get(base + "/health") as response:  # the health check stays open
            assert response.status == 200
        async with http.post(base + "/nlg", json={"response": "utter_greet", "tracker": {}, "arguments": {}},
                             headers={"Authorization": f"Bearer {TEST_RASA_TOKEN}"}) as response:
            assert response.status == 200 and (await response.json())["text"]


def test_no_secret_is_on_any_command_line(stack: Stack) -> None:
    """The engine's API token used to be passed as --auth-token: every local user could read
    it in ps. Now no running process shows the shared secret or SECRET_KEY in its arguments."""
    seen = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        seen += 1
        assert TEST_RASA_TOKEN.encode() not in arguments, arguments[:200]
        assert TEST_SECRET.encode() not in arguments, arguments[:200]
    assert seen > 3
    settings = stack.settings
    command = engine_command(settings, Path("model.tar.gz"), Path("endpoints.yml"))
    assert settings.rasa_token not in " ".join(command) and "--auth-token" not in command
    assert command[command.index("--interface") + 1] == "127.0.0.1"


def test_the_endpoints_file_holds_no_secret_but_the_engine_sends_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    text = write_engine_endpoints(settings, tmp_path / "endpoints.yml").read_text()
    assert settings.rasa_token not in text
    assert text.count("Authorization: Bearer ${RASA_TOKEN}") == 2  # action_endpoint and nlg, for Rasa to fill


def test_the_engine_refuses_to_start_without_the_secret(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "RASA_TOKEN"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    command = [str(ENGINE_VENV / "bin" / "python"), "-m", "nlu.serve", "run", "--model", "none.tar.gz"]
    for token in (None, "", "short", "CHANGE-ME-to-another-long-random-string"):
        if token is not None:
            env["RASA_TOKEN"] = token
        done = subprocess.run(command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and "RASA_TOKEN must be set" in done.stderr, done.stderr[-500:]
    env["RASA_TOKEN"] = TEST_RASA_TOKEN
    done = subprocess.run([*command, "--auth-token", TEST_RASA_TOKEN], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "not on the command line" in done.stderr


def test_the_rest_channel_refuses_a_missing_or_short_token() -> None:
    code = ("from nlu.rest_channel import AuthenticatedRestInput as C\n"
            "for creds in ({}, {'token': ''}, {'token': 'short'}, {'token': 'CHANGE-ME-to-a-long-one'}, None):\n"
            "    try:\n        C.from_credentials(creds)\n    except ValueError:\n        continue\n"
            "    raise SystemExit('accepted ' + repr(creds))\n"
            "C.from_credentials({'token': 'x' * 32})\nprint('ok')\n")
    done = subprocess.run([str(ENGINE_VENV / "bin" / "python"), "-c", code], cwd=PROJECT_ROOT,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip() == "ok", done.stderr[-800:]


@pytest.mark.parametrize("token", ["", "changeme", "CHANGE-ME-to-another-long-random-string", "short"])
def test_the_bot_service_and_action_server_refuse_an_empty_or_placeholder_token(tmp_path: Path, token: str) -> None:
    if token:
        with pytest.raises(ValueError, match="RASA_TOKEN"):
            make_settings(tmp_path, rasa_token=token)
        return
    settings = make_settings(tmp_path, rasa_token="")
    with pytest.raises(MissingSecret, match="RASA_TOKEN"):
        create_app(settings)
    with pytest.raises(MissingSecret, match="RASA_TOKEN"):
        create_actions_app(settings)


def test_each_command_needs_only_its_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("common.settings.PROJECT_ROOT", tmp_path)  # no var/ secrets of a development checkout
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("RASA_TOKEN", raising=False)
    for command in ("serve", "run"):
        with pytest.raises(SystemExit) as refused:
            load_settings(command)
        assert refused.value.code == 2
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    with pytest.raises(SystemExit):
        load_settings("serve")  # still no RASA_TOKEN
    monkeypatch.delenv("SECRET_KEY")
    monkeypatch.setenv("RASA_TOKEN", TEST_RASA_TOKEN)
    assert load_settings("actions").rasa_token == TEST_RASA_TOKEN  # the action server needs no SECRET_KEY
    monkeypatch.delenv("RASA_TOKEN")
    assert load_settings("db").secret_key == ""  # migrations need no secret at all
    # a development checkout: `make run` generated both secrets in var/
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secret_key").write_text(TEST_SECRET + "\n")
    (tmp_path / "var" / "rasa_token").write_text(TEST_RASA_TOKEN + "\n")
    settings = load_settings("run")
    assert (settings.secret_key, settings.rasa_token) == (TEST_SECRET, TEST_RASA_TOKEN)


def test_internal_services_listen_on_loopback_by_default() -> None:
    settings = Settings(secret_key=TEST_SECRET, rasa_token=TEST_RASA_TOKEN)
    assert (settings.bot_host, settings.actions_host) == ("127.0.0.1", "127.0.0.1")
    assert settings.engine_url.startswith("http://127.0.0.1:")
    assert settings.action_server_url.startswith("http://127.0.0.1:")
    assert "a-real" not in repr(settings) and TEST_RASA_TOKEN not in repr(settings)


def test_make_generates_both_development_secrets(tmp_path: Path) -> None:
    done = subprocess.run(["make", "--no-print-directory", "-f", str(PROJECT_ROOT / "Makefile"), "secret",
                           f"APP_PY={sys.executable}"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for name in ("secret_key", "rasa_token"):
        secret = tmp_path / "var" / name
        assert len(secret.read_text().strip()) >= 32 and secret.stat().st_mode & 0o077 == 0
    credentials = (PROJECT_ROOT / "dialogues" / "credentials.yml").read_text()
    assert "nlu.rest_channel.AuthenticatedRestInput" in credentials and "\nrest:" not in credentials
    assert "token: ${RASA_TOKEN}" in credentials
