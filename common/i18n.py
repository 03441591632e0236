"""Translations: Babel catalogs per locale, chosen per conversation, never per process.

Citizen-facing strings are English msgids marked with ``N_`` (for extraction) and translated
at render time with :meth:`Catalogs.gettext`. The locale of the current update lives in a
ContextVar so concurrent conversations never share one.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.support import Translations

from common.settings import SUPPORTED_LOCALES

DOMAIN = "messages"

current_locale: contextvars.ContextVar[str] = contextvars.ContextVar("current_locale", default="en")

LANGUAGE_NAMES = {"en": "English", "es": "Español", "ca": "Català"}


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    """Mark a string for extraction without translating it yet."""
    return message


class CatalogError(RuntimeError):
    """A catalog is missing or was not compiled."""


def negotiate_locale(
    requested: str | None, default: str, supported: Iterable[str] = SUPPORTED_LOCALES
) -> str:
    """Exact code, then Babel-normalised code, then base language, then the default."""
    supported = tuple(supported)
    if not requested:
        return default
    candidate = requested.strip().replace("-", "_")
    if candidate in supported:
        return candidate
    try:
        parsed = Locale.parse(candidate)
    except (ValueError, UnknownLocaleError):
        parsed = None
    if parsed is not None:
        if str(parsed) in supported:
            return str(parsed)
        if parsed.language in supported:
            return parsed.language
    base = candidate.split("_", 1)[0].lower()
    return base if base in supported else default


def browser_locale(accept_language: str | None, default: str,
                   supported: Iterable[str] = SUPPORTED_LOCALES) -> str:
    """The first supported language of an ``Accept-Language`` header, by its q-values
    ("ca-ES,ca;q=0.9,es;q=0.8" -> "ca"), else ``default``."""
    supported = tuple(supported)
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((-quality, index, tag))
    for _, _, tag in sorted(ranked):
        found = negotiate_locale(tag, "", supported)
        if found:
            return found
    return default


@dataclass(frozen=True)
class Catalogs:
    """Compiled catalogs for every supported locale."""

    translations: dict[str, Translations]
    default_locale: str

    @classmethod
    def load(cls, locales_dir: Path, default_locale: str = "en") -> Catalogs:
        translations: dict[str, Translations] = {}
        for locale in SUPPORTED_LOCALES:
            folder = locales_dir / locale / "LC_MESSAGES"
            po, mo = folder / f"{DOMAIN}.po", folder / f"{DOMAIN}.mo"
            if not po.exists():
                raise CatalogError(f"missing catalog {po}")
            if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
                raise CatalogError(f"{po} is not compiled (or older than its .mo): run `make locales`")
            with mo.open("rb") as handle:
                translations[locale] = Translations(handle, domain=DOMAIN)
        return cls(translations=translations, default_locale=default_locale)

    def negotiate(self, requested: str | None) -> str:
        return negotiate_locale(requested, self.default_locale, self.translations)

    def gettext(self, message: str, locale: str | None = None, **kwargs: object) -> str:
        locale = locale or current_locale.get()
        translations = self.translations.get(locale) or self.translations[self.default_locale]
        text = translations.gettext(message)
        return text.format(**kwargs) if kwargs else text

    def ngettext(
        self, singular: str, plural: str, n: int, locale: str | None = None, **kwargs: object
    ) -> str:
        locale = locale or current_locale.get()
        translations = self.translations.get(locale) or self.translations[self.default_locale]
        return translations.ngettext(singular, plural, n).format(n=n, **kwargs)

    def bound(self, locale: str):  # -> Callable[[str], str], for Jinja2 templates
        def _(message: str, **kwargs: object) -> str:
            return self.gettext(message, locale, **kwargs)

        return _


def format_when(moment: datetime, locale: str, zone: ZoneInfo) -> str:
    """A date and time as people of this locale write it, in the deployment's zone."""
    return format_datetime(moment.astimezone(zone), format="medium", tzinfo=zone, locale=locale)
