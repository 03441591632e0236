"""Signs that someone may be in danger now (nlu/lexicon/danger/signs.yml).

The safety net under the intent classifier: whatever intent DIET chose, a message that reads
like danger now (a gas smell, smoke, someone unconscious or not answering the door, a weapon,
a crime in progress, someone followed right now) is never handled as an ordinary report.
Plain Python (no Rasa) so the engine's component and the app's tests share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Pattern, Text

import yaml

from nlu.components.lexicon import LEXICON_DIR, fold

SIGNS_FILE = LEXICON_DIR / "danger" / "signs.yml"
ENTITY = "danger_sign"
# The intent a message with danger signs gets when DIET read it as something else: the
# dialogue asks "is anyone in danger right now?" before anything else.
DANGER_CHECK = "danger_check"
# Intents whose meaning a danger sign does not change: an emergency is already handled, and
# a request about the citizen's data or language is answered as such. Not "are you a bot?":
# "my neighbour is not answering the door for three days" once read so got "I am a bot".
KEEP_INTENTS = frozenset({
    "emergency", "forget_me", "change_language", "check_status",
    "subscribe_alerts", "unsubscribe_alerts", "cancel",
})
# The one FAQ answer that already says what to do in danger (call 112). Any other answer to a
# message showing danger now ("a man has followed me for ten minutes, what do I do?" read as
# where the police station is) would leave the citizen without the question that matters.
KEEP_FAQ_ANSWERS = frozenset({"faq/emergency_number"})


@dataclass(frozen=True)
class DangerSigns:
    """The regular expressions of nlu/lexicon/danger/signs.yml, compiled once."""

    signs: Dict[Text, List[Pattern[Text]]]
    present: List[Pattern[Text]]
    past: List[Pattern[Text]]
    told_after: FrozenSet[Text]

    @classmethod
    def from_file(cls, path: Path = SIGNS_FILE) -> "DangerSigns":
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return cls(
            signs={kind: [re.compile(p) for p in patterns] for kind, patterns in data["signs"].items()},
            present=[re.compile(p) for p in data["present"]],
            past=[re.compile(p) for p in data["past"]],
            told_after=frozenset(data["told_after"]),
        )

    def found(self, text: Text) -> FrozenSet[Text]:
        """The kinds of danger the text shows now (empty when none, or only in the past)."""
        folded = f" {fold(text)} "
        kinds = frozenset(kind for kind, patterns in self.signs.items()
                          if any(p.search(folded) for p in patterns))
        if not kinds:
            return kinds
        told_after = kinds & self.told_after
        if told_after and any(p.search(folded) for p in self.past) \
                and not any(p.search(folded) for p in self.present):
            kinds -= told_after  # "they set fire to the bins last night": a report
        return kinds


def checked_intent(intent: Optional[Text], kinds: FrozenSet[Text],
                   faq_answer: Optional[Text] = None) -> Optional[Text]:
    """The intent to act on: ``danger_check`` where danger shows under another reading.

    ``faq_answer`` is the FAQ answer chosen for the message (``faq/...``), if any."""
    if not kinds or intent is None:
        return intent
    if intent in KEEP_INTENTS or intent in KEEP_FAQ_ANSWERS:
        return intent
    if intent == "faq" and faq_answer in KEEP_FAQ_ANSWERS:
        return intent
    return DANGER_CHECK
