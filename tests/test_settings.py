"""The one settings object refuses what would be unsafe or wrong to run with."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.settings import MissingSecret, Settings


@pytest.mark.parametrize("secret", ["changeme", "CHANGE-ME-to-a-long-random-string", "short"])
def test_placeholder_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(secret_key=secret)


def test_an_empty_secret_is_refused_where_it_is_needed() -> None:
    settings = Settings(secret_key="", rasa_token="")  # `barri db upgrade` needs neither
    with pytest.raises(MissingSecret, match="SECRET_KEY"):
        settings.require("secret_key")
    with pytest.raises(MissingSecret, match="SECRET_KEY.*RASA_TOKEN"):
        settings.require("secret_key", "rasa_token")


def test_environment_overrides_and_derived_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "a-real-secret-of-enough-length")
    monkeypatch.setenv("BOT_PORT", "9090")
    monkeypatch.setenv("RASA_PORT", "5999")
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:8081/bot")
    settings = Settings()
    assert settings.bot_port == 9090
    assert settings.engine_url == "http://127.0.0.1:5999"
    assert settings.telegram_file_url == "http://127.0.0.1:8081/file/bot"
    assert len(settings.webhook_secret) == 64 and "a-real-secret" not in repr(settings)


def test_unknown_zone_and_locale_are_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(secret_key="a-real-secret-of-enough-length", time_zone="Mars/Olympus")
    with pytest.raises(ValidationError):
        Settings(secret_key="a-real-secret-of-enough-length", default_locale="fr")
