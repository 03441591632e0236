"""Which of our languages a citizen is writing in.

Short messages ("ok", "si", "hola") are ambiguous between English, Spanish and Catalan, so a
message only decides the language when the detector is clearly confident; otherwise the
earlier messages of the conversation, then the channel's hint, decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

_CODES = {Language.ENGLISH: "en", Language.SPANISH: "es", Language.CATALAN: "ca"}

# A message decides alone when its best language is this confident and this far ahead.
MIN_CONFIDENCE = 0.6
MIN_MARGIN = 0.3
MIN_LETTERS = 4
# A message of at least this many words may switch the conversation's language by itself.
MIN_WORDS_TO_SWITCH = 5


@lru_cache(maxsize=1)
def _detector() -> LanguageDetector:
    return (
        LanguageDetectorBuilder.from_languages(*_CODES)
        .with_preloaded_language_models()
        .build()
    )


def warm_up() -> None:
    """Load the language models now rather than during the first citizen's message."""
    _detector()


def confident_language(text: str) -> str | None:
    """The language of ``text`` when the detector is clearly sure, else None."""
    if sum(ch.isalpha() for ch in text) < MIN_LETTERS or text.startswith("/"):
        return None
    values = _detector().compute_language_confidence_values(text)
    if not values:
        return None
    best = values[0]
    runner_up = values[1].value if len(values) > 1 else 0.0
    if best.value >= MIN_CONFIDENCE and best.value - runner_up >= MIN_MARGIN:
        return _CODES[best.language]
    return None


def conversation_language(
    texts: Sequence[str], hint: str | None, default: str
) -> str:
    """Language of a conversation from its user messages, newest last.

    A newest message long enough to be a sentence decides alone when it is clearly in one
    language (the citizen switched). Short answers ("Carrer de Sants 20", "si", "ahir") do
    not: the last few messages together decide, then the channel's hint (browser or
    Telegram language), then the default.
    """
    recent = [text for text in texts[-6:] if text and not text.startswith("/")]
    if recent:
        if len(recent[-1].split()) >= MIN_WORDS_TO_SWITCH:
            found = confident_language(recent[-1])
            if found:
                return found
        found = confident_language(" ".join(recent))
        if found:
            return found
    return hint or default
