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

    The newest confident message wins; if none is confident on its own, the last few
    messages together; then the channel's hint (browser or Telegram language); then default.
    """
    for text in reversed(texts[-5:]):
        found = confident_language(text)
        if found:
            return found
    joined = " ".join(t for t in texts[-5:] if not t.startswith("/"))
    return confident_language(joined) or hint or default
