"""Case references: format, alphabet, randomness and normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.refs import REF_ALPHABET, REF_PATTERN, new_case_ref, normalise_ref


def test_alphabet_has_no_look_alikes() -> None:
    assert len(REF_ALPHABET) == 31
    assert not set("01OIL") & set(REF_ALPHABET)


def test_new_case_ref_format() -> None:
    for _ in range(500):
        ref = new_case_ref()
        assert len(ref) == 7
        assert ref[3] == "-"
        assert REF_PATTERN.fullmatch(ref)
        assert set(ref.replace("-", "")) <= set(REF_ALPHABET)


def test_new_case_ref_is_random() -> None:
    refs = {new_case_ref() for _ in range(300)}
    # 31**6 possible values: two or more collisions among 300 draws never happen in practice.
    assert len(refs) >= 299


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("K7Q-4M2", "K7Q-4M2"),
        ("k7q-4m2", "K7Q-4M2"),
        ("k7q4m2", "K7Q-4M2"),
        ("  K7Q 4M2 ", "K7Q-4M2"),
        ("k 7 q - 4 m 2", "K7Q-4M2"),
        ("K7Q--4M2", "K7Q-4M2"),
        ("K7Q_4M2", "K7Q-4M2"),
        ("K7Q-4M", None),
        ("K7Q-4M22", None),
        ("K7Q-4M0", None),
        ("O7Q-4M2", None),
        ("I7Q-4M2", None),
        ("L7Q-4M2", None),
        ("K7Q-4M1", None),
        ("K7Q-4MÉ", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_normalise_ref(text: str | None, expected: str | None) -> None:
    assert normalise_ref(text) == expected


@settings(database=None)  # no .hypothesis folder in the work tree
@given(st.text(alphabet=REF_ALPHABET, min_size=6, max_size=6), st.sampled_from(["", " ", "-"]))
def test_normalise_ref_round_trip(chars: str, separator: str) -> None:
    canonical = f"{chars[:3]}-{chars[3:]}"
    assert normalise_ref(canonical) == canonical
    assert normalise_ref(f"{chars[:3]}{separator}{chars[3:]}".lower()) == canonical


@settings(database=None)
@given(st.text(max_size=12))
def test_normalise_ref_output_is_canonical_or_none(text: str) -> None:
    result = normalise_ref(text)
    assert result is None or REF_PATTERN.fullmatch(result)
