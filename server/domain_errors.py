"""What a service refuses, in the domain's own words: no HTTP in here.

Services raise these; :func:`server.errors.error_middleware` is the one place that maps
them to HTTP answers (:data:`server.errors.STATUS_OF`). ``code`` is a stable word a page
can act on (e.g. ``identity_mismatch`` makes the records page ask to confirm); the
message is what a person reads.
"""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses; subclasses say why."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Invalid(DomainError):
    """The request is well-formed but asks for something that cannot be (bad value)."""


class NotFound(DomainError):
    """What the request names does not exist (or is not visible to the asker)."""


class Forbidden(DomainError):
    """The asker may not do this."""


class Conflict(DomainError):
    """The request contradicts the current state (already decided, identity mismatch)."""


class Unprocessable(DomainError):
    """The content cannot be taken as what it is (damaged, contradicting its claim)."""


class Unsupported(DomainError):
    """A kind of content the domain does not take at all."""


class TooLarge(DomainError):
    """The request carries more than the domain accepts."""


class Unavailable(DomainError):
    """The domain cannot serve this now (busy, a dependency away); try again later."""
