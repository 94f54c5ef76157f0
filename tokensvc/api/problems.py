"""Problem answers: one mapping and one rendering for Flask and validate's hot path.

Both ways into the API answer every failure through these two functions, so a
client (and a test comparing them) sees the same status, type, body and headers
whichever answered.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from tokensvc.errors import (
    BackendUnavailable,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    TokensvcError,
    UnsupportedMediaType,
    problem,
)

log = logging.getLogger("tokensvc.api")

_HTTP_ERRORS: dict[int, type[TokensvcError]] = {
    400: BadRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def problem_of(error: Exception, request_id: str | None) -> TokensvcError:
    """What ``error`` answers as: itself, a werkzeug HTTP error's problem, 503 for a
    database outage, else 500 (logged with its traceback under the request id; the
    caller sees neither trace nor text)."""
    if isinstance(error, TokensvcError):
        return error
    if isinstance(error, HTTPException):
        kind = _HTTP_ERRORS.get(error.code or 500, TokensvcError)
        return kind(error.description if kind is BadRequest else None)
    if isinstance(error, OperationalError | InterfaceError):
        log.warning("database unavailable: %s", type(error).__name__)
        return BackendUnavailable("the database is unavailable, retry later")
    log.error("unexpected error (request %s)", request_id, exc_info=error)
    return TokensvcError("unexpected error; quote the request_id")


def problem_response(error: TokensvcError, *, instance: str, request_id: str) -> Response:
    """The application/problem+json answer; 503 and 429 say when to come back."""
    answer = problem(error, instance=instance, request_id=request_id)
    # As Flask's jsonify words it (compact, a final newline): one answer, byte for byte.
    text = json.dumps(answer, separators=(",", ":")) + "\n"
    response = Response(text, error.status, mimetype="application/problem+json")
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response
