#!/usr/bin/env python3
"""One line of figures from a `rasa test nlu` report folder (used by `make nlu-dev`)."""

import json
import sys
from pathlib import Path

folder = Path(sys.argv[1])
parts = []
for name, label in (("intent_report.json", "intents"), ("DIETClassifier_report.json", "entities (DIET)"),
                    ("response_selection_report.json", "FAQ answers")):
    path = folder / name
    if path.exists():
        report = json.loads(path.read_text())
        accuracy = report.get("accuracy", report.get("micro avg", {}).get("f1-score"))
        weighted = report.get("weighted avg", {}).get("f1-score")
        parts.append(f"{label}: accuracy {accuracy:.1%}, weighted F1 {weighted:.1%}" if accuracy is not None
                     else f"{label}: weighted F1 {weighted:.1%}")
print("; ".join(parts))
