"""nlu/repeated_work.py does once what Rasa redid every turn, with the same answers: a schema
check accepts and refuses what ``jsonschema.validate`` does, with the same error, and an event
type name resolves to the class Rasa finds. Run inside the engine's Python (Rasa 3.6)."""

from __future__ import annotations

from tests.conftest import engine_python

SAME_ANSWERS = r"""
import jsonschema
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import Event
from rasa.shared.utils.common import all_subclasses

rasa_validate, rasa_resolve = jsonschema.validate, Event.resolve_by_type
from nlu import repeated_work
repeated_work.install()
assert jsonschema.validate is not rasa_validate and Event.resolve_by_type is not rasa_resolve

schema = RemoteAction.action_response_format_spec()  # the events schema every answer is checked with
answers = [
    {"events": [{"event": "slot", "name": "place", "value": "Gràcia"}], "responses": [{"text": "hola"}]},
    {"events": "not a list", "responses": []},
    {"events": [{"event": 42}], "responses": [{"text": 1}]},
]
for answer in answers * 2:  # the second round uses the compiled validator
    expected = mine = None
    try:
        rasa_validate(answer, schema)
    except jsonschema.ValidationError as error:
        expected = (error.message, list(error.path))
    try:
        jsonschema.validate(answer, schema)
    except jsonschema.ValidationError as error:
        mine = (error.message, list(error.path))
    assert mine == expected, (answer, mine, expected)
try:
    jsonschema.validate({}, {"type": "no such type"})
    raise AssertionError("an invalid schema was accepted")
except jsonschema.SchemaError:
    pass

names = sorted({event.type_name for event in all_subclasses(Event)})
for name in names * 2:
    assert Event.resolve_by_type(name) is rasa_resolve(name), name
try:
    Event.resolve_by_type("no_such_event")
    raise AssertionError("an unknown event name resolved")
except ValueError:
    pass
print("same", len(names))
"""


def test_schema_checks_and_event_classes_answer_as_rasa_does() -> None:
    assert engine_python(SAME_ANSWERS).startswith("same ")
