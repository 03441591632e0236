"""The one settings object, built once from the environment and passed in."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from datetime import time as dt_time
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

SUPPORTED_LOCALES = ("en", "es", "ca")

_PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "please-change", "xxx"}
MIN_SECRET_LENGTH = 16
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")

# The secrets; in development `make run` generates each in var/<name>.
SECRETS = ("secret_key", "rasa_token")


class MissingSecret(ValueError):
    """A process started without a secret it needs (see ``Settings.require``)."""


def _weak(secret: str) -> bool:
    key = secret.strip().lower()
    return key in _PLACEHOLDER_SECRETS or "change-me" in key or "changeme" in key or len(key) < MIN_SECRET_LENGTH


class Settings(BaseSettings):
    """Deployment settings. Every field can be set by the environment variable of the same
    name in upper case (``BOT_PORT``, ``DATABASE_URL`` ...)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    bot_host: str = "127.0.0.1"
    bot_port: int = 8080
    public_url: str = ""  # e.g. https://barri.example.org, used for links and origin checks

    rasa_url: str = ""  # defaults to http://127.0.0.1:RASA_PORT
    rasa_port: int = 5005
    # the shared secret of the bot service, the engine and the action server: the engine's HTTP
    # API and REST channel and the action server's /webhook and /nlg refuse requests without it
    rasa_token: str = Field(default="", repr=False)
    actions_host: str = "127.0.0.1"
    actions_port: int = 5055
    actions_url: str = ""  # defaults to http://127.0.0.1:ACTIONS_PORT

    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'barri.db'}"
    tracker_store_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'tracker.db'}"
    # redis://host:port/db: state shared by several instances, e.g. the engine's lock store so
    # that engines take turns on one conversation (empty: in memory, fine for one instance)
    redis_url: str = Field(default="", repr=False)

    secret_key: str = Field(default="", repr=False)

    log_format: Literal["text", "json"] = "text"  # json: one object per line, for log collectors
    metrics_port: int = Field(default=9464, ge=0, le=65535)  # `barri serve`: /metrics on loopback; 0: off

    default_locale: str = "en"
    time_zone: str = "Europe/Madrid"
    city_name: str = "Barcelona"
    neighbourhoods_geojson: Path = PROJECT_ROOT / "data" / "barcelona-barris.geojson"
    # the gazetteer: barcelona-streets.geojson, barcelona-carrerer.csv,
    # barcelona-metro-stations.csv and barcelona-landmarks.yml (common/places.py)
    gazetteer_dir: Path = PROJECT_ROOT / "data"
    locales_dir: Path = PROJECT_ROOT / "locales"

    telegram_token: str = Field(default="", repr=False)
    telegram_api_url: str = ""  # Bot API base, e.g. http://127.0.0.1:8081/bot (default: Telegram's)
    telegram_webhook_url: str = ""  # public https URL: webhook mode instead of long polling
    telegram_webhook_secret: str = Field(default="", repr=False)  # default: derived from SECRET_KEY
    dispatch_chat_id: int | None = None  # a Telegram group where new cases are announced
    dispatch_locale: str = ""  # the dispatch group's language (empty: DEFAULT_LOCALE)

    # WhatsApp Cloud API (bot/channels/whatsapp): on when the four values below are set
    whatsapp_token: str = Field(default="", repr=False)  # a system user's permanent access token
    whatsapp_phone_number_id: str = ""  # the business phone number's id (not the number)
    whatsapp_app_secret: str = Field(default="", repr=False)  # signs the webhook's notifications
    whatsapp_verify_token: str = Field(default="", repr=False)  # chosen by you; Meta echoes it on set-up
    whatsapp_api_url: str = "https://graph.facebook.com/v21.0"  # the Graph API base with its version
    # outside the 24-hour window the outbox sends these approved templates, by outbox kind, each
    # with one body parameter (the message); and the template language for each Barri locale
    whatsapp_templates: dict[str, str] = {"alert": "barri_alert", "status": "barri_status",
                                          "follow_up": "barri_follow_up", "survey": "barri_survey"}
    whatsapp_template_languages: dict[str, str] = {"en": "en", "es": "es", "ca": "ca"}
    whatsapp_rate_per_second: float = Field(default=20.0, gt=0)  # the number's throughput (Cloud API: 80/s)
    whatsapp_per_user_interval_seconds: float = Field(default=6.0, ge=0)  # WhatsApp's pair rate: ~1 per 6 s
    whatsapp_max_body_bytes: int = Field(default=1024 * 1024, gt=0)  # one webhook notification

    max_message_chars: int = 4000
    max_photo_bytes: int = 10 * 1024 * 1024
    max_photos_per_report: int = 5
    max_messages_per_minute: int = 20  # per citizen, all channels; 0 = no limit
    rate_limit_window_seconds: float = 60.0  # the "minute" above (shorter in tests)
    # web chat: all sessions opened from one network address together (a new session per message
    # must not dodge the limit above); generous, as a mobile carrier's NAT puts many citizens
    # behind one address. 0 = no limit
    max_messages_per_minute_per_address: int = Field(default=120, ge=0)
    # web chat, per network address and RATE_LIMIT_WINDOW_SECONDS: connections (each `hello`
    # reads the database) and new conversations among them. 0 = no limit
    max_hellos_per_minute_per_address: int = Field(default=120, ge=0)
    max_new_sessions_per_minute_per_address: int = Field(default=30, ge=0)
    # a web-chat session not used for this long is refused and a new conversation starts
    webchat_session_idle_days: float = Field(default=30, gt=0)
    # reverse proxies in front of the bot service: the citizen's address is then read from
    # X-Forwarded-For, this many entries from the right (0: the connection's own address)
    trusted_proxies: int = Field(default=0, ge=0)
    max_socket_frame_bytes: int = 64 * 1024  # one web-chat WebSocket frame
    max_json_body_bytes: int = 64 * 1024  # JSON and form bodies of the staff API and Open311
    # the access log: method, path (never the query string), status, size, time; the client's
    # address only with "with_address" (anonymous reports sit badly with a log of who connected)
    access_log: Literal["off", "anonymous", "with_address"] = "anonymous"
    engine_timeout_seconds: float = 30.0
    # while messages written during an engine outage are kept, the engine is probed this often
    replay_probe_seconds: float = Field(default=5.0, gt=0)
    allowed_origins: tuple[str, ...] = ()  # extra origins allowed to open the web-chat socket
    # the city's own sites allowed to frame the chat page (the /embed.js snippet) and to open the
    # Rasa-compatible Socket.IO endpoint, e.g. ["https://www.barcelona.cat"]; none by default
    embed_origins: tuple[str, ...] = ()

    # Scheduler (bot.scheduler, bot.jobs): one leader among the bot-service instances.
    leader_lease_seconds: float = Field(default=30.0, gt=0)  # a dead leader is replaced after this
    leader_renew_seconds: float = Field(default=5.0, gt=0)  # well under the lease
    sweep_interval_seconds: float = Field(default=60.0, gt=0)  # how often each sweep job runs
    escalate_after_seconds: float = 30 * 60  # a case still `new` after this is escalated
    escalate_urgent_after_seconds: float = 5 * 60  # the same for urgent cases
    follow_up_after_seconds: float = 7 * 24 * 3600  # reporter hears the status of an open case
    survey_delay_seconds: float = 3600  # satisfaction survey after resolution
    survey_window_seconds: float = 14 * 24 * 3600  # cases resolved longer ago get no survey
    survey_answer_window_seconds: float = 3 * 24 * 3600  # a bare typed yes/no answers a survey this recent
    retention_days: float = Field(default=180, gt=0)  # personal data kept after the last case closes
    # photos sent for a report that was never filed are deleted this long after they arrived
    pending_photos_max_age_seconds: float = Field(default=24 * 3600, gt=0)

    # Outbox (bot.outbox): messages Barri sends on its own (alerts, status changes, follow-ups).
    outbox_rate_per_second: float = Field(default=30.0, gt=0)  # Telegram: about 30 messages/s per bot
    outbox_per_chat_interval_seconds: float = Field(default=1.0, ge=0)  # Telegram: 1 message/s per chat
    outbox_max_attempts: int = Field(default=5, ge=1)  # then the row is failed (flood waits do not count)
    outbox_retry_base_seconds: float = Field(default=5.0, gt=0)  # backoff after a 5xx/network error, doubling
    outbox_retry_max_seconds: float = Field(default=600.0, gt=0)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)  # how often an idle worker looks for due rows
    outbox_lease_seconds: float = Field(default=30.0, gt=0)  # a claimed row of a dead worker is retried after this
    outbox_batch_size: int = Field(default=30, ge=1)  # rows claimed at a time: a second of sends at 30/s
    outbox_concurrency: int = Field(default=4, ge=1)  # sends in flight at once (the kill -9 window)
    quiet_hours_start: str = "22:00"  # no non-urgent message to a citizen from here (TIME_ZONE) ...
    quiet_hours_end: str = "08:00"  # ... to here; deferred, never dropped. Equal values: no quiet hours

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if value not in SUPPORTED_LOCALES:
            raise ValueError(f"DEFAULT_LOCALE must be one of {SUPPORTED_LOCALES}")
        return value

    @field_validator("dispatch_locale")
    @classmethod
    def _known_dispatch_locale(cls, value: str) -> str:
        if value and value not in SUPPORTED_LOCALES:
            raise ValueError(f"DISPATCH_LOCALE must be empty or one of {SUPPORTED_LOCALES}")
        return value

    @field_validator("embed_origins")
    @classmethod
    def _bare_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # they go verbatim into the page's Content-Security-Policy: nothing but scheme://host[:port]
        origins = tuple(origin.rstrip("/") for origin in value)
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"EMBED_ORIGINS: {origin!r} is not an origin like https://www.example.org")
        return origins

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://")):
            raise ValueError("REDIS_URL must look like redis://host:6379/1")
        return value

    @field_validator("quiet_hours_start", "quiet_hours_end")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        try:
            dt_time.fromisoformat(value)
        except ValueError as error:
            raise ValueError(f"{value!r} is not a time of day like 22:00") from error
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
        """A secret that is set must be a real one; whether it must be set at all depends on
        the process (``require``): the database migration needs none, the action server only
        RASA_TOKEN, so each container of the stack gets only the secrets it uses."""
        for name in SECRETS:
            value = getattr(self, name)
            if value and _weak(value):
                raise ValueError(self._secret_problem(name))
        return self

    @property
    def dispatch_language(self) -> str:
        """The language of the messages to the dispatch group."""
        return self.dispatch_locale or self.default_locale

    def require(self, *names: str) -> None:
        """Refuse to go on without these secrets (raises ``MissingSecret``)."""
        missing = [name for name in names if not getattr(self, name)]
        if missing:
            raise MissingSecret("; ".join(self._secret_problem(name) for name in missing))

    @staticmethod
    def _secret_problem(name: str) -> str:
        return (f"{name.upper()} must be set to a random value of at least {MIN_SECRET_LENGTH} characters "
                f"(`make run` generates one in var/{name})")

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
    def whatsapp_enabled(self) -> bool:
        """The WhatsApp channel runs only with all four of its values."""
        return bool(self.whatsapp_token and self.whatsapp_phone_number_id and self.whatsapp_app_secret
                    and self.whatsapp_verify_token)

    @property
    def engine_url(self) -> str:
        return (self.rasa_url or f"http://127.0.0.1:{self.rasa_port}").rstrip("/")

    @property
    def action_server_url(self) -> str:
        return (self.actions_url or f"http://127.0.0.1:{self.actions_port}").rstrip("/")


# the secrets each process needs (the others need none: `barri db upgrade` runs without any)
NEEDED_SECRETS = {"serve": ("secret_key", "rasa_token"), "actions": ("rasa_token",),
                  "run": ("secret_key", "rasa_token")}


def load_settings(command: str = "") -> Settings:
    """Settings from the environment; in a development checkout SECRET_KEY and RASA_TOKEN may
    come from var/secret_key and var/rasa_token, which `make run` generates. Refuses to go on
    without the secrets ``command`` needs."""
    overrides: dict[str, Any] = {}
    for name in SECRETS:
        dev_secret = PROJECT_ROOT / "var" / name
        if name.upper() not in os.environ and dev_secret.exists():
            overrides[name] = dev_secret.read_text().strip()
    try:
        settings = Settings(**overrides)
        settings.require(*NEEDED_SECRETS.get(command, ()))
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(p) for p in problem["loc"]) or "settings"
            print(f"barri: {where}: {problem['msg']}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
    except MissingSecret as problem:
        print(f"barri: {problem}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
    return settings
