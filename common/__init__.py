"""Code both processes use: the bot service (``bot/``) and the action server (``dialogues/``).

Settings, catalogs and citizen-facing texts, neighbourhoods, places, language, time phrases and
logging. Nothing here imports ``bot`` or ``dialogues``.
"""
