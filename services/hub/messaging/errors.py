"""The messaging kernel's errors. Decode failures carry a stable code for dead-letter headers."""

from __future__ import annotations


class MessagingError(Exception):
    """Base of every error raised by the messaging kernel."""


class SchemaNotFound(MessagingError):
    """A record name or schema directory the registry does not know."""


class UnencodableRecord(MessagingError):
    """A record that does not match its schema; a programming error at the producer."""


class UndecodableMessage(MessagingError):
    """Bytes a consumer cannot turn into a record. Sent to the dead-letter topic, never retried."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class HandlerFailed(MessagingError):
    """An infrastructure fault in a consumer's handler: offsets stay uncommitted and the
    batch is redelivered after restart."""
