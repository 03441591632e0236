"""Barri's storage layer: SQLModel tables, sessions and every query, as plain functions taking a session.

Import the submodules you need (``storage.db``, ``storage.models``, ``storage.cases``,
``storage.reporters``, ``storage.attachments``, ``storage.erasure``, ``storage.audit``, ...); this
package does no I/O and creates no engine at import.
"""
