"""Barri's incident lexicon: stems and phrases per category (nlu/lexicon/<lang>.yml).

Plain Python (no Rasa) so the engine's normaliser and the app's tests share it.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Text, Tuple

import yaml

CATEGORIES = (
    "theft", "vandalism", "noise", "harassment", "assault",
    "drugs", "suspicious_activity", "traffic", "incivility",
)
ENTITY = "incident_type"
# Key of the proper names in which an incident word is no incident (Carrer d'en Robador).
NAMES = "names"
LEXICON_DIR = Path(__file__).resolve().parent.parent / "lexicon"


def fold(text: Text) -> Text:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


class Lexicon:
    """Stems and phrases per category; a trailing * means "starts with"."""

    def __init__(self, entries: List[Tuple[Text, Text]], names: Iterable[Text] = ()) -> None:
        # longest first, so "palau de la musica catalana" goes before "palau de la musica"
        self.names = sorted({fold(name) for name in names} - {""}, key=len, reverse=True)
        self.words: Dict[Text, set] = {}
        self.prefixes: List[Tuple[Text, Text]] = []
        self.phrases: List[Tuple[Text, Text]] = []
        for category, pattern in entries:
            folded = fold(pattern.rstrip("*"))
            if not folded:
                continue
            if " " in folded:
                self.phrases.append((folded, category))
            elif pattern.endswith("*"):
                self.prefixes.append((folded, category))
            else:
                self.words.setdefault(folded, set()).add(category)
        # the three languages share some entries ("graffiti"): each counts once
        self.prefixes = sorted(set(self.prefixes))
        self.phrases = sorted(set(self.phrases))

    @classmethod
    def from_folder(cls, folder: Path) -> "Lexicon":
        entries: List[Tuple[Text, Text]] = []
        names: List[Text] = []
        for path in sorted(folder.glob("*.yml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for category, patterns in data.items():
                if category == NAMES:
                    names.extend(str(p) for p in patterns or [])
                    continue
                if category not in CATEGORIES:
                    raise ValueError(f"{path}: unknown incident type {category!r}")
                entries.extend((category, str(p)) for p in patterns or [])
        return cls(entries, names)

    def categories(self, text: Text) -> Counter:
        """How many lexicon entries of each category the text contains."""
        padded = f" {fold(text)} "
        for name in self.names:
            padded = padded.replace(f" {name} ", " ")
        tokens = padded.split()
        hits: Counter = Counter()
        for phrase, category in self.phrases:
            if f" {phrase} " in padded:
                hits[category] += 2
        for token in tokens:
            # a word counts once per category, however many languages list it
            hits.update(self.token_categories(token))
        return hits

    def token_categories(self, token: Text) -> set:
        found = set(self.words.get(token, ()))
        found.update(category for prefix, category in self.prefixes if token.startswith(prefix))
        return found

    def span_of(self, text: Text, category: Text) -> Tuple[int, int]:
        """Where in the original text the first word of this category stands."""
        for match in re.finditer(r"\w+", text):
            if category in self.token_categories(fold(match.group(0))):
                return match.start(), match.end()
        return 0, len(text)

    def best(self, text: Text) -> Optional[Text]:
        hits = self.categories(text).most_common(2)
        if not hits:
            return None
        if len(hits) > 1 and hits[0][1] == hits[1][1]:
            return None  # a tie is not a decision
        return hits[0][0]


# Intents that never describe an incident: a lexicon word there is a coincidence.
NO_INCIDENT_INTENTS = {
    "greet", "goodbye", "thank", "affirm", "deny", "bot_challenge", "change_language",
}


# Below this DIET confidence, an incident type the lexicon does not confirm is dropped: a wrong
# type sends the case to the wrong queue and the form does not ask, a missing one is asked.
MIN_CONFIDENCE = 0.5


def _confidence(entity: Dict[Text, Any]) -> float:
    try:
        return float(entity.get("confidence_entity", 1.0))
    except (TypeError, ValueError):
        return 1.0


def _span(text: Text, entity: Dict[Text, Any]) -> Text:
    start, end = entity.get("start"), entity.get("end")
    if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
        return text[start:end]
    return str(entity.get("value", ""))


def normalise_entities(
    text: Text,
    intent: Optional[Text],
    entities: Iterable[Dict[Text, Any]],
    lexicon: Lexicon,
    extractor: Text,
) -> List[Dict[Text, Any]]:
    """``entities`` with every incident_type one of CATEGORIES.

    - A value outside the categories is read with the lexicon (the word, then the message);
      dropped when the lexicon cannot tell.
    - A category DIET chose is kept unless the lexicon reads the very words DIET marked as a
      different category: the lexicon is written by hand, DIET guesses from similar spellings
      ("atracaron" looks like "robaron" but is an assault).
    - A category DIET is unsure of (confidence under MIN_CONFIDENCE) that the lexicon does not
      confirm is dropped: the form asks the type with buttons.
    - A message about an incident where DIET marked none gets the lexicon's reading.
    """
    kept: List[Dict[Text, Any]] = []
    for entity in entities:
        if entity.get("entity") != ENTITY:
            kept.append(entity)
            continue
        value = str(entity.get("value", ""))
        read = lexicon.best(_span(text, entity)) or lexicon.best(value)
        if (value in CATEGORIES and _confidence(entity) < MIN_CONFIDENCE
                and lexicon.best(_span(text, entity)) is None and lexicon.best(text) != value):
            continue  # DIET unsure and nothing to confirm it: the form asks, it does not guess
        if value in CATEGORIES and (read is None or read == value):
            kept.append(entity)
            continue
        category = read or (None if value in CATEGORIES else lexicon.best(text))
        if category:
            kept.append({**entity, "value": category, "processors": [extractor]})
    if intent not in NO_INCIDENT_INTENTS and not any(e.get("entity") == ENTITY for e in kept):
        category = lexicon.best(text)
        if category:
            start, end = lexicon.span_of(text, category)
            kept.append({
                "entity": ENTITY, "value": category, "start": start, "end": end,
                "confidence_entity": 0.5, "extractor": extractor,
            })
    return kept


# --- the lexicon as DIET features -------------------------------------------------------
# One regex per category, matched by Rasa's RegexFeaturizer: DIET then knows that "mangaron"
# or "pixaven" is a theft or an incivility word even when no training sentence uses it, which
# is what separates a report from a bare place or an FAQ. Written to nlu/lexicon_features.yml
# by scripts/lexicon-features.py; a test keeps the file in step with the lexicon.

# folded letter -> the letters citizens type for it (the text reaches DIET unfolded)
_ACCENTED = {"a": "aàáâä", "e": "eèéêë", "i": "iìíîï", "o": "oòóôö", "u": "uùúûü", "n": "nñ", "c": "cç"}


def _letters(word: Text) -> Text:
    return "".join(f"[{_ACCENTED[ch]}]" if ch in _ACCENTED else re.escape(ch) for ch in word)


def feature_patterns(lexicon: Lexicon) -> Dict[Text, Text]:
    """``incident_<category>`` -> a case-insensitive regex of all its words, stems and phrases."""
    alternatives: Dict[Text, List[Text]] = {category: [] for category in CATEGORIES}
    for word, categories in sorted(lexicon.words.items()):
        for category in categories:
            alternatives[category].append(_letters(word) + r"\b")
    for prefix, category in lexicon.prefixes:
        alternatives[category].append(_letters(prefix) + r"\w*")
    for phrase, category in lexicon.phrases:
        alternatives[category].append(r"[\W_]+".join(_letters(w) for w in phrase.split()) + r"\b")
    return {
        f"incident_{category}": r"\b(?:" + "|".join(sorted(alternatives[category])) + ")"
        for category in CATEGORIES
    }
