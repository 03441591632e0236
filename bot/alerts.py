"""How a neighbourhood alert reads in a citizen's chat, in their language.

``storage.alerts.create_alert`` calls ``AlertComposer`` once per recipient; the first line
(severity and neighbourhoods) is always in the citizen's language, the text in theirs when the
author wrote it, else in the deployment's default language, else in any language given.
"""

from __future__ import annotations

from collections.abc import Sequence

from common.i18n import N_, Catalogs

SEVERITY_LABELS = {
    "info": N_("Information"),
    "warning": N_("Warning"),
    "danger": N_("Danger"),
}
SEVERITY_ICONS = {"info": "ℹ️", "warning": "⚠️", "danger": "🚨"}
ALERT_HEADING = N_("Alert for {places}")


class AlertComposer:
    """``compose(locale, severity, text, neighbourhood names) -> message`` for the outbox."""

    def __init__(self, catalogs: Catalogs) -> None:
        self.catalogs = catalogs

    def __call__(self, locale: str, severity: str, text: str, places: Sequence[str]) -> str:
        locale = self.catalogs.negotiate(locale)
        label = self.catalogs.gettext(SEVERITY_LABELS.get(severity, SEVERITY_LABELS["info"]), locale)
        heading = self.catalogs.gettext(ALERT_HEADING, locale, places=", ".join(places))
        return f"{SEVERITY_ICONS.get(severity, '')} {label} · {heading}\n\n{text}".strip()
