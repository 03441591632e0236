"""Fill msgstr of new catalog entries from a small JSON of {msgid: [es, ca]} (English = msgid).

Used after `make update-catalogs` when a few strings were added; large batches go to a
translator. Usage: .venv/bin/python scripts/add-translations.py translations.json
"""

import json
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

LOCALES = Path(__file__).resolve().parent.parent / "locales"

new = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
for locale, index in (("en", None), ("es", 0), ("ca", 1)):
    path = LOCALES / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle)
    for message in catalog:
        if message.id in new:
            message.string = message.id if index is None else new[message.id][index]
            message.flags.discard("fuzzy")
    with path.open("wb") as handle:
        write_po(handle, catalog, width=0, ignore_obsolete=True)
