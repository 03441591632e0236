"""Typed exceptions raised by the storage layer."""


class StorageError(Exception):
    """Base class for every error raised on purpose by ``storage``."""


class DatabaseUnavailable(StorageError):
    """The database could not be reached or did not answer (connection refused, locked, ...)."""


class CaseRefExhausted(StorageError):
    """No free case reference was found after several random draws (practically impossible)."""


class AttachmentTooLarge(StorageError):
    """An uploaded attachment is larger than ``storage.attachments.MAX_ATTACHMENT_BYTES``."""


class TooManyPendingAttachments(StorageError):
    """The sender already has as many attachments waiting for a report as one report may carry."""


class UserExists(StorageError):
    """A staff user with this name already exists."""


class UserNotFound(StorageError):
    """No staff user has this name."""
