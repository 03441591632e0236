"""Short, human-friendly case references such as ``K7Q-4M2``.

The alphabet leaves out 0, O, 1, I and L, which people confuse when they read a reference
aloud or type it from a screenshot. Six characters give 31**6 (about 887 million) references.
"""

from __future__ import annotations

import re
import secrets

REF_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
REF_LENGTH = 6
REF_PATTERN = re.compile(rf"^[{REF_ALPHABET}]{{3}}-[{REF_ALPHABET}]{{3}}$")

_SEPARATORS = re.compile(r"[\s\-_.]+")


def new_case_ref() -> str:
    """Return a new random reference, formatted ``XXX-XXX``."""
    chars = "".join(secrets.choice(REF_ALPHABET) for _ in range(REF_LENGTH))
    return f"{chars[:3]}-{chars[3:]}"


def normalise_ref(text: str | None) -> str | None:
    """Return ``text`` as a canonical reference, or ``None`` when it cannot be one.

    Accepts lowercase, surrounding or inner spaces and a missing or extra dash:
    ``" k7q 4m2 "``, ``"k7q4m2"`` and ``"K7Q-4M2"`` all give ``"K7Q-4M2"``.
    """
    if text is None:
        return None
    compact = _SEPARATORS.sub("", text).upper()
    if len(compact) != REF_LENGTH or any(c not in REF_ALPHABET for c in compact):
        return None
    return f"{compact[:3]}-{compact[3:]}"
