"""The one settings object, built once from the environment and passed in."""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

SUPPORTED_LOCALES = ("en", "es", "ca")

_PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "please-change", "xxx"}


class Settings(BaseSettings):
    """Deployment settings. Every field can be set by the environment variable of the same
    name in upper case (``BOT_PORT``, ``DATABASE_URL`` ...)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    bot_host: str = "127.0.0.1"
    bot_port: int = 8080
    public_url: str = ""  # e.g. https://barri.example.org, used for links and origin checks

    rasa_url: str = ""  # defaults to http://127.0.0.1:RASA_PORT
    rasa_port: int = 5005
    rasa_token: str = ""
    actions_host: str = "127.0.0.1"
    actions_port: int = 5055
    actions_url: str = ""  # defaults to http://127.0.0.1:ACTIONS_PORT

    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'barri.db'}"
    tracker_store_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'tracker.db'}"

    secret_key: str = Field(default="", repr=False)

    default_locale: str = "en"
    time_zone: str = "Europe/Madrid"
    city_name: str = "Barcelona"
    neighbourhoods_geojson: Path = PROJECT_ROOT / "data" / "barcelona-barris.geojson"
    locales_dir: Path = PROJECT_ROOT / "locales"

    telegram_token: str = Field(default="", repr=False)
    telegram_api_url: str = ""  # Bot API base, e.g. http://127.0.0.1:8081/bot (default: Telegram's)
    telegram_webhook_url: str = ""  # public https URL: webhook mode instead of long polling
    telegram_webhook_secret: str = Field(default="", repr=False)  # default: derived from SECRET_KEY
    dispatch_chat_id: int | None = None  # a Telegram group where new cases are announced

    max_message_chars: int = 4000
    max_photo_bytes: int = 10 * 1024 * 1024
    max_photos_per_report: int = 5
    engine_timeout_seconds: float = 30.0
    allowed_origins: tuple[str, ...] = ()  # extra origins allowed to open the web-chat socket

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if value not in SUPPORTED_LOCALES:
            raise ValueError(f"DEFAULT_LOCALE must be one of {SUPPORTED_LOCALES}")
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"TIME_ZONE {value!r} is not a known time zone") from error
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        key = self.secret_key.strip().lower()
        if key in _PLACEHOLDER_SECRETS or "change-me" in key or "changeme" in key or len(key) < 16:
            raise ValueError(
                "SECRET_KEY must be set to a random value of at least 16 characters "
                "(`make run` generates one in var/secret_key)"
            )
        return self

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def telegram_file_url(self) -> str:
        """File download base that goes with ``telegram_api_url`` (".../bot" -> ".../file/bot")."""
        base = self.telegram_api_url.rstrip("/")
        if not base:
            return ""
        return base[: -len("/bot")] + "/file/bot" if base.endswith("/bot") else base + "/file/bot"

    @property
    def webhook_secret(self) -> str:
        """The X-Telegram-Bot-Api-Secret-Token value (1-256 of A-Z, a-z, 0-9, _ and -)."""
        if self.telegram_webhook_secret:
            return self.telegram_webhook_secret
        return hashlib.sha256(("telegram-webhook:" + self.secret_key).encode()).hexdigest()

    @property
    def engine_url(self) -> str:
        return (self.rasa_url or f"http://127.0.0.1:{self.rasa_port}").rstrip("/")

    @property
    def action_server_url(self) -> str:
        return (self.actions_url or f"http://127.0.0.1:{self.actions_port}").rstrip("/")
