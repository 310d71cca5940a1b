"""Domain and service errors. Entry points map each class to one HTTP status."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class DomainError(Exception):
    """Base class; `detail` is safe to show to the caller."""

    status = 400
    title = "Bad Request"

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors: list[FieldError] = errors or []
        # RFC 9457 extension members added to the problem document (e.g. "remaining").
        self.extensions: dict[str, object] = {}


class ValidationFailed(DomainError):
    status = 422
    title = "Unprocessable Content"

    @classmethod
    def on(cls, field_name: str, message: str) -> ValidationFailed:
        return cls(f"{field_name}: {message}", [FieldError(field_name, message)])


class NotFound(DomainError):
    status = 404
    title = "Not Found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class Contention(Conflict):
    """Other requests kept changing what this one read for longer than its time budget:
    nothing was written, and the same request may be sent again after `retry_after`."""

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unauthorized(DomainError):
    status = 401
    title = "Unauthorized"


class RateLimited(DomainError):
    status = 429
    title = "Too Many Requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(DomainError):
    status = 503
    title = "Service Unavailable"
