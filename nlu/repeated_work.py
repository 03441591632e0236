"""Work Rasa 3.6 redoes in every turn, done once: schema checks and event class lookups.

- ``jsonschema.validate(instance, schema)`` first checks that the *schema* is a valid JSON
  schema (against the draft's meta-schema), then builds a validator for it, then checks the
  instance. Rasa calls it on every answer of the action server (the events schema, large)
  and of the NLG endpoint: the meta-schema check of the same constant schema was most of a
  turn's CPU (bench/README.md). Here each distinct schema is checked and compiled once, and
  every call still validates its instance with the same validator class and raises the same
  ``best_match`` error.
- ``Event.resolve_by_type`` walks every subclass of ``Event`` (``all_subclasses``, recursive,
  ``inspect.isabstract`` on each) for each event read back from the tracker store or an
  action's answer, about fifty a turn. Here the class found for a type name is remembered
  (the first match, as Rasa's loop returns); names that match nothing still go to Rasa.

``install()`` is called by ``python -m nlu.serve run`` (the engine). Runs inside the engine
(Python 3.10).
"""

from __future__ import annotations

import json
from typing import Any


def install() -> None:
    _compile_schemas_once()
    _remember_event_classes()


def _compile_schemas_once() -> None:
    import jsonschema
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for

    if getattr(jsonschema.validate, "_barri_compiled", False):
        return
    jsonschema_validate = jsonschema.validate
    compiled: dict[str, Any] = {}

    def validate(instance: Any, schema: Any, cls: Any = None, *args: Any, **kwargs: Any) -> None:
        if cls is not None or args or kwargs:
            return jsonschema_validate(instance, schema, cls, *args, **kwargs)
        try:
            key = json.dumps(schema, sort_keys=True)
        except (TypeError, ValueError):  # not plain JSON: no key to remember it by
            return jsonschema_validate(instance, schema)
        validator = compiled.get(key)
        if validator is None:
            validator_class = validator_for(schema)
            validator_class.check_schema(schema)  # raises SchemaError as before; then never again
            validator = compiled[key] = validator_class(schema)
        error = best_match(validator.iter_errors(instance))
        if error is not None:
            raise error
        return None

    validate._barri_compiled = True  # type: ignore[attr-defined]
    jsonschema.validate = validate


def _remember_event_classes() -> None:
    from rasa.shared.core.events import Event
    from rasa.shared.utils.common import all_subclasses

    if getattr(Event.resolve_by_type, "_barri_remembered", False):
        return
    rasa_resolve = Event.resolve_by_type
    found: dict[str, type[Event]] = {}

    def resolve_by_type(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
        event_class = found.get(type_name)
        if event_class is not None:
            return event_class
        for candidate in all_subclasses(Event):  # Rasa's own search, once per name
            if candidate.type_name == type_name:
                found[type_name] = candidate
                return candidate
        return rasa_resolve(type_name, default)  # unknown names: Rasa's answer or error

    resolve_by_type._barri_remembered = True  # type: ignore[attr-defined]
    Event.resolve_by_type = staticmethod(resolve_by_type)
