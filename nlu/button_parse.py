"""Button payloads (``/inform{"contact_mode":"chat"}``) parsed without the NLU pipeline.

Rasa 3.6 runs every message through the whole NLU graph (featurizers, DIET, the selector,
our components) and only then, last, ``RegexMessageHandler`` replaces the result of a
payload naming a domain intent with a new message built from the payload alone: everything
the pipeline computed is thrown away. Half of a report's turns are such buttons. Here the
processor builds that same message first and skips the graph; a payload the handler would not
read (an unknown intent such as ``/faq/how_it_works``, which nlu/components/faq_button.py
answers, or broken JSON) still goes through the pipeline. bench/README.md: what it saves.

``install()`` is called by ``python -m nlu.serve run`` (the engine). Runs inside the engine
(Python 3.10).
"""

from __future__ import annotations

from typing import Any, Dict, Text


def install() -> None:
    from rasa.core.processor import MessageProcessor
    from rasa.nlu.classifiers.regex_message_handler import RegexMessageHandler
    from rasa.shared.constants import INTENT_MESSAGE_PREFIX
    from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader
    from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
    from rasa.shared.nlu.training_data.message import Message

    if getattr(MessageProcessor._parse_message_with_graph, "_barri_buttons", False):
        return
    graph_parse = MessageProcessor._parse_message_with_graph

    def parse(self: Any, message: Any, tracker: Any, only_output_properties: bool = True) -> Dict[Text, Any]:
        text = message.text or ""
        if text.startswith(INTENT_MESSAGE_PREFIX):
            original = Message(data={TEXT: text})
            # what RegexMessageHandler does last in the graph, with the same domain and name
            unpacked = YAMLStoryReader.unpack_regex_message(
                original, self.domain, entity_extractor_name=RegexMessageHandler.__name__)
            if unpacked is not original:  # a new message: the handler would have replaced the graph's
                parse_data: Dict[Text, Any] = {
                    TEXT: "", INTENT: {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, ENTITIES: []}
                parse_data.update(unpacked.as_dict(only_output_properties=only_output_properties))
                return parse_data
        return graph_parse(self, message, tracker, only_output_properties)

    parse._barri_buttons = True  # type: ignore[attr-defined]
    MessageProcessor._parse_message_with_graph = parse
