"""Barri's storage layer: SQLModel tables, sessions and the functions that read and write cases.

Import the submodules you need (``storage.db``, ``storage.models``, ``storage.cases``,
``storage.refs``, ``storage.migrate``); this package does no I/O and creates no engine at import.
"""
