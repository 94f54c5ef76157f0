"""Every problem type of the service (docs/api.md, "Problem types"), in one place.

Each exception carries the slug, status and title of its RFC 9457 problem, so
the storage layer raises what the API answers without knowing about HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class TokensvcError(Exception):
    """Base of every error that maps to a problem type."""

    slug: ClassVar[str] = "internal-error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        # The problem document, when this error was read from an answer (the client).
        self.problem: dict[str, Any] | None = None


class InvalidToken(TokensvcError):
    slug, status, title = "invalid-token", 404, "Invalid token"


class NotFound(TokensvcError):
    slug, status, title = "not-found", 404, "Not found"


class PortsExhausted(TokensvcError):
    slug, status, title = "ports-exhausted", 409, "No more ports available"


class AlreadyConnected(TokensvcError):
    slug, status, title = "already-connected", 409, "Console already connected"


class ValidationFailed(TokensvcError):
    """One or more fields are invalid; ``errors`` maps each field to why."""

    slug, status, title = "validation-error", 422, "Validation error"

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        listed = "; ".join(f"{name}: {why}" for name, why in sorted(self.errors.items()))
        super().__init__(listed)


class BadRequest(TokensvcError):
    slug, status, title = "bad-request", 400, "Bad request"


class Unauthorized(TokensvcError):
    slug, status, title = "unauthorized", 401, "Unauthorized"


class Forbidden(TokensvcError):
    slug, status, title = "forbidden", 403, "Forbidden"


class MethodNotAllowed(TokensvcError):
    slug, status, title = "method-not-allowed", 405, "Method not allowed"


class NotAcceptable(TokensvcError):
    slug, status, title = "not-acceptable", 406, "Not acceptable"


class PayloadTooLarge(TokensvcError):
    slug, status, title = "payload-too-large", 413, "Payload too large"


class UnsupportedMediaType(TokensvcError):
    slug, status, title = "unsupported-media-type", 415, "Unsupported media type"


class TooManyRequests(TokensvcError):
    """Too many failed key checks or invalid tokens from one client address."""

    slug, status, title = "too-many-requests", 429, "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class UnsupportedInBackend(TokensvcError):
    slug, status, title = "unsupported-in-backend", 501, "Not supported by this backend"


class BackendUnavailable(TokensvcError):
    slug, status, title = "backend-unavailable", 503, "Backend unavailable"
    retry_after = 2


class SchemaOutOfDate(BackendUnavailable):
    """The database schema is not at the migrations' head (MySQL is not auto-migrated)."""

    title = "Database schema out of date"


class UnsupportedVersion(NotAcceptable):
    """A requested object version this service cannot produce."""


PROBLEM_TYPES: tuple[type[TokensvcError], ...] = (
    TokensvcError,
    InvalidToken,
    NotFound,
    PortsExhausted,
    AlreadyConnected,
    ValidationFailed,
    BadRequest,
    Unauthorized,
    Forbidden,
    MethodNotAllowed,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    UnsupportedInBackend,
    BackendUnavailable,
)


def problem(error: TokensvcError, *, instance: str, request_id: str) -> dict[str, Any]:
    """The RFC 9457 body of ``error``."""
    body: dict[str, Any] = {
        "type": f"/problems/{error.slug}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "instance": instance,
        "request_id": request_id,
    }
    if isinstance(error, ValidationFailed):
        body["errors"] = [
            {"field": name, "detail": why} for name, why in sorted(error.errors.items())
        ]
    return body


def error_for_slug(slug: str) -> type[TokensvcError]:
    """The exception class of a problem type (the client raises these)."""
    for error in PROBLEM_TYPES:
        if error.slug == slug:
            return error
    return TokensvcError
