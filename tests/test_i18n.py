"""Catalogs are complete in every language, and every response the engine can ask for exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from babel.messages.pofile import read_po

from common.i18n import CatalogError, Catalogs, negotiate_locale
from common.responses import ADAPTER_MESSAGES, RESPONSES
from common.settings import PROJECT_ROOT, SUPPORTED_LOCALES

LOCALES = PROJECT_ROOT / "locales"
PLACEHOLDER = re.compile(r"\{(\w*)\}")


def template_ids() -> set[str]:
    with (LOCALES / "messages.pot").open("rb") as handle:
        return {m.id for m in read_po(handle) if m.id}


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_catalog_is_complete_untranslated_free_and_not_fuzzy(locale: str) -> None:
    with (LOCALES / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle)
    messages = {m.id: m for m in catalog if m.id}
    missing = template_ids() - set(messages)
    assert not missing, f"{locale}: missing {sorted(missing)[:5]}"
    untranslated = [m.id for m in messages.values() if not all(forms(m.string))]
    assert not untranslated, f"{locale}: untranslated {untranslated[:5]}"
    fuzzy = [m.id for m in messages.values() if m.fuzzy]
    assert not fuzzy, f"{locale}: fuzzy {fuzzy[:5]}"
    # every form (singular and plurals) has the placeholders of the English plural
    wrong = [m.id for m in messages.values()
             if any(set(PLACEHOLDER.findall(forms(m.id)[-1])) != set(PLACEHOLDER.findall(form))
                    for form in forms(m.string))]
    assert not wrong, f"{locale}: placeholders differ in {wrong[:5]}"


def forms(text: str | tuple[str, ...]) -> tuple[str, ...]:
    """A message's forms: one, or the singular and the plurals of a plural message."""
    return (text,) if isinstance(text, str) else tuple(text)


def test_every_text_of_the_code_is_in_the_template() -> None:
    ids = template_ids()
    texts = {t.text for t in RESPONSES.values()} | {e for t in RESPONSES.values() for e in t.extra}
    texts |= {b.title for t in RESPONSES.values() for b in t.buttons if b.title not in ("English", "Español", "Català")}
    texts |= set(ADAPTER_MESSAGES.values())
    assert texts - ids == set(), "run `make update-catalogs`"


def test_every_domain_response_has_a_template() -> None:
    names: set[str] = set()
    for path in (PROJECT_ROOT / "dialogues" / "domain").glob("*.yml"):
        names |= set((yaml.safe_load(path.read_text()) or {}).get("responses", {}))
    assert names - set(RESPONSES) == set()


def test_the_three_languages_really_differ() -> None:
    catalogs = Catalogs.load(LOCALES)
    greeting = RESPONSES["utter_greet"].text
    rendered = {locale: catalogs.gettext(greeting, locale, city="Barcelona") for locale in SUPPORTED_LOCALES}
    assert len(set(rendered.values())) == 3
    assert "Barcelona" in rendered["ca"]


def test_a_po_without_its_mo_fails_loudly(tmp_path: Path) -> None:
    for locale in SUPPORTED_LOCALES:
        folder = tmp_path / locale / "LC_MESSAGES"
        folder.mkdir(parents=True)
        (folder / "messages.po").write_bytes((LOCALES / locale / "LC_MESSAGES" / "messages.po").read_bytes())
    with pytest.raises(CatalogError, match="not compiled"):
        Catalogs.load(tmp_path)


@pytest.mark.parametrize(
    ("requested", "expected"),
    [("ca", "ca"), ("es-ES", "es"), ("ca_ES", "ca"), ("en-US", "en"), ("fr-FR", "en"), (None, "en"), ("", "en"), ("zz-!!", "en")],
)
def test_locale_negotiation(requested: str | None, expected: str) -> None:
    assert negotiate_locale(requested, "en") == expected
