"""Per-language NLU figures of one trained model on held-out examples (never the sealed sets).

    PYTHONPATH=. .venv-engine/bin/python scripts/nlu-eval.py MODEL TEST_FILE... [--languages-from nlu]

Runs inside the engine (Python 3.10). For each language: intent accuracy (the pipeline's final
intent, as `rasa test nlu` counts it), the FAQ answer chosen for FAQ questions, the incident type
of the reports annotated with one type (right: that type alone; wrong: another type; missing:
none), the place entity (exactly the annotated span, or any), and the median time of one parse.
A test file named after a language (nlu/dev/en.yml) is that language; other examples take the
language of the training file they came from (the 85/15 split of `make nlu-dev` mixes them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time
from collections import defaultdict
from pathlib import Path

import structlog
from rasa.core.agent import Agent
from rasa.shared.nlu.training_data.loading import load_data

TYPE_ENTITY = "incident_type"
TYPED_INTENTS = {"report_incident"}  # the type is asked of reports (emergencies get none guessed)
DANGER_INTENTS = {"emergency", "danger_check"}  # 112 first, or "is anyone in danger now?" first
LANGUAGES = ("en", "es", "ca")


def language_of_texts(root: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for language in LANGUAGES:
        for example in load_data(str(root / language)).intent_examples:
            found.setdefault(example.get("text"), language)
    return found


async def evaluate(model: str, files: list[Path], root: Path, dump: Path | None) -> None:
    agent = Agent.load(model)
    languages = language_of_texts(root)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    times: list[float] = []
    dumped = dump.open("w", encoding="utf-8") if dump else None
    for path in files:
        fixed = path.stem if path.stem in LANGUAGES else None
        for example in load_data(str(path)).intent_examples:
            text = example.get("text")
            language = fixed or languages.get(text, "??")
            started = time.perf_counter()
            parsed = await agent.parse_message(text)
            times.append(time.perf_counter() - started)
            if dumped:
                dumped.write(json.dumps({"file": str(path), "language": language, "gold": example.as_dict(), "parsed": parsed},
                                        ensure_ascii=False, default=str) + "\n")
            c = counts[language]
            gold, got = example.get("intent"), (parsed.get("intent") or {}).get("name")
            c["n"] += 1
            c["intent"] += gold == got
            c["fallback"] += got == "nlu_fallback"
            # an emergency is caught when it is handled as one or asked about first (danger_check)
            c["emergency_n"] += gold == "emergency"
            c["emergency_caught"] += gold == "emergency" and got in DANGER_INTENTS
            c["false_alarm"] += gold != "emergency" and got in DANGER_INTENTS
            if gold == "faq":
                c["faq_n"] += 1
                chosen = parsed.get("response_selector", {}).get("faq", {}).get("response", {})
                right_answer = chosen.get("intent_response_key") == example.get("intent_response_key")
                c["faq"] += got == "faq" and right_answer
                c["faq_selected"] += right_answer  # the selector alone, whatever the intent
            types = {e.get("value") for e in example.get("entities") or [] if e.get("entity") == TYPE_ENTITY}
            if gold in TYPED_INTENTS and len(types) == 1:
                found = {e.get("value") for e in parsed.get("entities") or [] if e.get("entity") == TYPE_ENTITY}
                c["type_n"] += 1
                c["type_right"] += found == types
                c["type_wrong"] += bool(found - types)
                c["type_missing"] += not found
            places = {e.get("value") for e in example.get("entities") or [] if e.get("entity") == "place"}
            if places:
                got_places = {e.get("value") for e in parsed.get("entities") or [] if e.get("entity") == "place"}
                c["place_n"] += 1
                c["place_exact"] += got_places == places
                c["place_found"] += bool(got_places)
    print("| language | examples | intent accuracy | FAQ answer (selector alone) | incident type right / wrong / missing "
          "| place exact / found | emergencies caught | danger read in others |")
    print("|---|---|---|---|---|---|---|---|")
    for language in sorted(counts, key=lambda name: (name not in LANGUAGES, LANGUAGES.index(name) if name in LANGUAGES else 0)):
        c = counts[language]
        pct = lambda a, b: f"{a / b:.1%}" if b else "–"  # noqa: E731
        print(f"| {language} | {c['n']} | {pct(c['intent'], c['n'])} | {pct(c['faq'], c['faq_n'])} ({pct(c['faq_selected'], c['faq_n'])}) | "
              f"{pct(c['type_right'], c['type_n'])} / {pct(c['type_wrong'], c['type_n'])} / "
              f"{pct(c['type_missing'], c['type_n'])} ({c['type_n']}) | "
              f"{pct(c['place_exact'], c['place_n'])} / {pct(c['place_found'], c['place_n'])} ({c['place_n']}) | "
              f"{c['emergency_caught']}/{c['emergency_n']} | {c['false_alarm']}/{c['n'] - c['emergency_n']} |")
    print("# nlu_fallback answers: " + ", ".join(f"{k} {v['fallback']}" for k, v in counts.items()))
    print(f"# median parse {1000 * statistics.median(times):.1f} ms over {len(times)} messages")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--languages-from", type=Path, default=Path("nlu"))
    parser.add_argument("--dump", type=Path, help="write every example and its parse here (JSON lines)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    asyncio.run(evaluate(args.model, args.files, args.languages_from, args.dump))


if __name__ == "__main__":
    main()
