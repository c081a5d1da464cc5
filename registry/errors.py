"""Domain errors raised by services and selectors; the API maps each to a 4xx response."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status_code = 400
    default_code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.extra = extra


class ValidationFailed(DomainError):
    """Input that breaks a rule; ``fields`` maps field names to messages."""

    def __init__(self, message: str, *, fields: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.fields = fields or {}


class NotFound(DomainError):
    """Missing, or not visible to the caller: the two are indistinguishable on purpose."""

    status_code = 404
    default_code = "not_found"


class Forbidden(DomainError):
    status_code = 403
    default_code = "forbidden"


class Conflict(DomainError):
    status_code = 409
    default_code = "conflict"
