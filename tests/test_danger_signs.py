"""The emergency safety net (nlu/components/danger.py): danger signs under any intent, in the
three languages, and what does not count (the past, a gas bill). The Rasa component around it
is exercised through the engine by the sealed sets and the stories."""

from __future__ import annotations

import pytest

from nlu.components.danger import DANGER_CHECK, DangerSigns, checked_intent


@pytest.fixture(scope="module")
def signs() -> DangerSigns:
    return DangerSigns.from_file()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("it smells of gas all over the stairwell", "gas"),
        ("Huele a gas en el rellano desde hace un rato", "gas"),
        ("fa una pudor de gas horrible al pis de dalt", "gas"),
        ("there's black smoke coming out of the bakery", "fire"),
        ("sale humo de la ventana del segundo", "fire"),
        ("surt fum per la finestra del veí", "fire"),
        ("a man collapsed at the bus stop and isn't moving", "unconscious"),
        ("mi vecina de 80 años no abre la puerta y no contesta al teléfono", "unconscious"),
        ("hi ha un home estirat a terra, inconscient", "unconscious"),
        ("a guy has a knife and is shouting at people", "weapon"),
        ("un tío con una navaja amenazando en la parada", "weapon"),
        ("un home amb una navalla a la plaça", "weapon"),
        ("two guys are breaking into the shop next door", "in_progress"),
        ("están forzando la persiana de la farmacia", "in_progress"),
        ("s'estan barallant a la plaça, hi ha molta gent", "in_progress"),
        ("ara mateix estan rebentant un cotxe al carrer", "in_progress"),
        ("someone is following me since the metro", "followed"),
        ("me está siguiendo un hombre desde el metro", "followed"),
        ("un tio m'està seguint des de la parada", "followed"),
        ("my dad is having a heart attack", "medical"),
        ("el meu avi s'ofega i no pot respirar", "medical"),
        ("a man is hitting a woman outside the bar", "violence"),
        ("se oyen gritos de socorro en el piso de arriba", "violence"),
        ("un chico dice que se va a tirar del puente", "threat"),
        ("están intentando entrar en mi casa", "intrusion"),
        ("hi ha un home dins de casa meva", "intrusion"),
        ("socorro", "help"),
        ("it smells really strongly of gas on the landing", "gas"),
        ("veo llamas dentro del local de abajo", "fire"),
        ("el meu pare ha caigut i no es desperta", "unconscious"),
        ("a man is waving a machete in the park", "weapon"),
        ("someone is on my balcony right now", "intrusion"),
        ("a baby is locked in a car in the sun", "child"),
        ("there's someone walking behind me since the metro and i'm scared", "followed"),
        # issue #12: lost people now, ledges, broken bottles, falls behind a door, blood, looting
        ("we can't find our 5 year old at the beach", "lost"),
        ("no encuentro a mi hijo en el centro comercial", "lost"),
        ("no trobo la meva filla a la fira", "lost"),
        ("my mum has dementia and has wandered off in her nightie", "lost"),
        ("a man is on the ledge of the roof saying he'll jump", "threat"),
        ("una chica al otro lado de la barandilla del puente", "threat"),
        ("he smashed a bottle and is going for the barman with it", "weapon"),
        ("va amb el cul de l'ampolla a la mà", "weapon"),
        ("la veïna ha caigut i no em contesta", "unconscious"),
        ("lleva cuatro días sin abrir y nadie la ha visto", "unconscious"),
        ("a uno le chorrea sangre de la ceja", "violence"),
        ("a woman is screaming for help in the courtyard", "violence"),
        ("they're carrying the tvs out of the shop into a van", "in_progress"),
        ("s'ha sentit un pet fort i ara fa pudor de gas", "gas"),
        ("a kid is leaning out of the third floor window", "child"),
    ],
)
def test_signs_in_each_language(signs: DangerSigns, text: str, kind: str) -> None:
    assert kind in signs.found(text)


@pytest.mark.parametrize(
    "text",
    [
        "they set fire to the bins last night",
        "ayer me robaron con una navaja en el Raval",  # told afterwards: a report
        "ahir van cremar un contenidor al meu carrer",
        "ayer intentaron entrar en mi casa",
        "he was hitting her last week, I want it on record",
        "the gas bill is too high",
        "my bike was stolen from the rack",
        "la música del bar no para",
        "quiero denunciar un robo",
        "com funciona això?",
        "can you help me with my tax return",
        "i keep going round in circles, can a person help me",
        "i can't find my son's school bag",  # a lost thing, not a lost person
        "se me ha perdido la perrita por el Guinardó",  # a lost pet: out of scope
        "a man followed me from the metro earlier but i'm home now and the door's locked",
        "había sangre por todas partes después de la pelea, ya ha acabado",
        "last summer my son got lost on the beach for an hour",
    ],
)
def test_no_sign_in_ordinary_or_past_messages(signs: DangerSigns, text: str) -> None:
    assert signs.found(text) == frozenset()


def test_the_past_does_not_hide_what_is_going_on_now(signs: DangerSigns) -> None:
    # yesterday's fight is over; the smoke now is not
    assert signs.found("ayer hubo un incendio y ahora sale humo otra vez") == frozenset({"fire"})
    # a neighbour who has not answered since yesterday is a danger now
    assert "unconscious" in signs.found("el vecino no contesta al timbre desde ayer")


@pytest.mark.parametrize(
    "intent", ["report_incident", "inform", "out_of_scope", "nlu_fallback", "greet", "bot_challenge"]
)
def test_danger_under_another_reading_is_checked(intent: str) -> None:
    assert checked_intent(intent, frozenset({"gas"})) == DANGER_CHECK


@pytest.mark.parametrize(
    "intent", ["emergency", "faq/emergency_number", "forget_me", "change_language", "cancel"]
)
def test_intents_a_sign_does_not_change(intent: str) -> None:
    assert checked_intent(intent, frozenset({"weapon"})) == intent


def test_only_the_112_answer_keeps_a_faq_reading() -> None:
    # "someone has followed me for ten minutes, what do I do?" read as a question about the
    # police station: the danger question comes first; "is 112 the number?" is answered
    assert checked_intent("faq", frozenset({"followed"}), "faq/police_station") == DANGER_CHECK
    assert checked_intent("faq", frozenset({"followed"}), None) == DANGER_CHECK
    assert checked_intent("faq", frozenset({"followed"}), "faq/emergency_number") == "faq"


def test_no_sign_no_change() -> None:
    assert checked_intent("report_incident", frozenset()) == "report_incident"
