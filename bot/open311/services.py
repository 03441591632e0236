"""The Open311 services: one per Barri category except "other" (nine), all of type "realtime",
group "security", without metadata (so a service definition has no attributes). Names are
translated through the bot's catalogs (``?lang=es|ca``); descriptions stay English."""

from __future__ import annotations

from typing import Any

from common.i18n import Catalogs
from common.responses import CATEGORY_LABELS
from storage.models import CATEGORIES

GROUP = "security"
SERVICE_CODES: tuple[str, ...] = tuple(code for code in CATEGORIES if code != "other")

# Plain English: not marked for translation, so the chat catalogs stay complete.
DESCRIPTIONS = {
    "theft": "Theft, pickpocketing or attempted theft of belongings, bicycles or from vehicles.",
    "vandalism": "Damage to street furniture, buildings or vehicles, graffiti on property.",
    "noise": "Noise that disturbs the neighbourhood: parties, shouting, music at night.",
    "harassment": "Harassment, intimidation or threats in the street or a public place.",
    "assault": "An assault or a fight. If someone is in danger right now, call 112.",
    "drugs": "Drug dealing or drug use in the street or a public place.",
    "suspicious_activity": "People or activity that look suspicious in the neighbourhood.",
    "traffic": "Dangerous driving, speeding or vehicles endangering pedestrians.",
    "incivility": "Antisocial behaviour: urinating in the street, littering, drinking in public.",
}
KEYWORDS = {
    "theft": "theft, robbery, pickpocket, stolen",
    "vandalism": "vandalism, damage, graffiti, broken",
    "noise": "noise, party, music, shouting",
    "harassment": "harassment, intimidation, threats",
    "assault": "assault, fight, violence",
    "drugs": "drugs, dealing",
    "suspicious_activity": "suspicious, activity, strangers",
    "traffic": "traffic, speeding, dangerous driving",
    "incivility": "incivility, antisocial, littering, urinating",
}


def service_name(catalogs: Catalogs | None, code: str, locale: str) -> str:
    label = CATEGORY_LABELS[code]
    if locale == "en" or catalogs is None:
        return label
    return catalogs.gettext(label, locale)


def service(catalogs: Catalogs | None, code: str, locale: str) -> dict[str, Any]:
    return {
        "service_code": code,
        "service_name": service_name(catalogs, code, locale),
        "description": DESCRIPTIONS[code],
        "metadata": False,
        "type": "realtime",
        "keywords": KEYWORDS[code],
        "group": GROUP,
    }
