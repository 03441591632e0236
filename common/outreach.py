"""Messages Barri sends first (through the outbox), rendered in the citizen's language.

The scheduler calls these to write the follow-up of an open case and the first question of
the after-resolution survey. Their buttons are engine payloads that carry the case reference,
so an answer needs nothing remembered from before: the follow-up and survey actions
(dialogues/actions/followup.py) check that the case belongs to whoever pressed.

Telegram drops a button whose ``callback_data`` is over 64 bytes: every payload here stays
under 50 (``/survey_answer{"survey":"K7Q-4M2:comment:skip"}`` is the longest).
"""

from __future__ import annotations

from common.i18n import N_, Catalogs
from common.responses import STATUS_LABELS, render

# survey questions, in the order they are asked, as written in payloads
SURVEY_SOLVED = "solved"
SURVEY_SATISFACTION = "sat"
SURVEY_SAFETY = "safe"
SURVEY_COMMENT = "comment"
SURVEY_STEPS = (SURVEY_SOLVED, SURVEY_SATISFACTION, SURVEY_SAFETY, SURVEY_COMMENT)
SKIP = "skip"

ADD_INFORMATION = N_("Add information")
ALL_FINE = N_("All fine, thanks")
YES = N_("Yes")
NO = N_("No")
SKIP_LABEL = N_("Skip")

ButtonList = list[tuple[str, str]]


def add_info_payload(case_ref: str) -> str:
    return f'/add_case_info{{"case_ref":"{case_ref}"}}'


def survey_payload(case_ref: str, step: str, answer: str) -> str:
    return f'/survey_answer{{"survey":"{case_ref}:{step}:{answer}"}}'


def parse_survey_value(value: object) -> tuple[str, str, str] | None:
    """``"K7Q-4M2:sat:4"`` -> ``("K7Q-4M2", "sat", "4")``; None for anything else."""
    parts = str(value or "").split(":")
    if len(parts) != 3 or parts[1] not in SURVEY_STEPS:
        return None
    return parts[0], parts[1], parts[2]


def survey_buttons(catalogs: Catalogs, locale: str, case_ref: str, step: str) -> ButtonList:
    """The answer buttons of one survey question."""
    t = catalogs.bound(locale)
    if step == SURVEY_SOLVED:
        return [(t(YES), survey_payload(case_ref, step, "yes")), (t(NO), survey_payload(case_ref, step, "no"))]
    if step in (SURVEY_SATISFACTION, SURVEY_SAFETY):
        return [(str(score), survey_payload(case_ref, step, str(score))) for score in range(1, 6)]
    return [(t(SKIP_LABEL), survey_payload(case_ref, SURVEY_COMMENT, SKIP))]


def follow_up_message(
    catalogs: Catalogs, locale: str, *, case_ref: str, status: str
) -> tuple[str, ButtonList]:
    """The case's status and an invitation to add information, with its two buttons."""
    t = catalogs.bound(locale)
    message = render("utter_follow_up", catalogs, locale, ref=case_ref, status=t(STATUS_LABELS.get(status, status)))
    return message["text"], [(t(ADD_INFORMATION), add_info_payload(case_ref)), (t(ALL_FINE), "/thank")]


def survey_opening(catalogs: Catalogs, locale: str, *, case_ref: str) -> tuple[str, ButtonList]:
    """The survey's first question (was it solved?) with yes/no buttons."""
    message = render("utter_survey_solved", catalogs, locale, ref=case_ref)
    return message["text"], survey_buttons(catalogs, locale, case_ref, SURVEY_SOLVED)
