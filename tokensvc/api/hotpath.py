"""Validate as a plain WSGI function in front of Flask: the proxies' hot path.

Flask's request machinery (contexts, URL matching, hooks) cost about as much CPU as
everything validate itself does (bench/: about 0.75 of the naive cache floor through
Flask). This layer answers the two answers that make the traffic: a console (200) and
an invalid token (404), with the same view function, key check, body schema, metrics
and headers as the Flask route. Anything else (a bad key, a bad body, another object
version, an outage, any surprise) goes on to Flask with the body put back, and Flask
answers it exactly as before.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

from tokensvc.api import schemas
from tokensvc.api.routing import MAX_BODY, Call
from tokensvc.api.tokens import validate
from tokensvc.auth import bearer_key, require_role
from tokensvc.db.service_keys import ServiceKey
from tokensvc.errors import InvalidToken, TokensvcError, TooManyRequests, problem
from tokensvc.objects.console import ConsoleConnection
from tokensvc.ratelimit import TOKEN

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from tokensvc.services import Services

PATH = "/v1/tokens/validate"
ROLES = ("proxy",)  # as the route's


class ValidateHotPath:
    """WSGI middleware: validate's common answers without Flask, the rest through it."""

    def __init__(self, app: WSGIApplication, services: Services) -> None:
        self.app = app
        self.services = services
        self.latency = services.metrics.request_latency

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not _candidate(environ):
            return self.app(environ, start_response)
        started = time.perf_counter()
        address = environ.get("REMOTE_ADDR") or ""
        response: Response | None
        try:
            # One dict lookup for an address without recent failures (tokensvc/ratelimit.py).
            self.services.limiter.check(address, token=True)
        except TooManyRequests as error:
            response = _problem_response(error)
        else:
            key = self._proxy_key(environ)
            if key is None:  # Flask answers (and counts) the refusal, before it reads the body
                return self.app(environ, start_response)
            raw = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
            environ["wsgi.input"] = io.BytesIO(raw)  # for Flask, if it gets the request
            response = self._answer(key, raw, address)
            if response is None:
                return self.app(environ, start_response)
        elapsed = time.perf_counter() - started
        self.latency.labels(PATH, "POST", str(response.status_code)).observe(elapsed)
        return response(environ, start_response)

    def _proxy_key(self, environ: WSGIEnvironment) -> ServiceKey | None:
        """The caller's key if it may validate: checked before any byte of the body is read,
        so a client without a key cannot hold a request thread by sending its body slowly."""
        try:
            key = self.services.authenticator.authenticate(
                bearer_key(environ.get("HTTP_AUTHORIZATION"))
            )
            require_role(key, ROLES)
        except TokensvcError:
            return None
        return key

    def _answer(self, key: ServiceKey, raw: bytes, address: str) -> Response | None:
        """The response, or None when Flask should answer."""
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                return None
            body = schemas.VALIDATE.parse(data)
        except (TokensvcError, ValueError, RecursionError):
            return None  # Flask words every refusal
        try:
            found = validate(Call(key, body, self.services, ConsoleConnection.VERSION))
        except InvalidToken as error:
            self.services.limiter.failed(address, TOKEN)
            return _problem_response(error)
        except Exception:  # Flask logs it, and answers 500 or 503
            return None
        assert isinstance(found, Response)  # (the view's type covers every view)
        found.headers["X-Request-Id"] = uuid.uuid4().hex
        return found


def _problem_response(error: TokensvcError) -> Response:
    """The problem answer Flask's ``problem_response`` gives for ``error`` on this path."""
    request_id = uuid.uuid4().hex
    answer = problem(error, instance=PATH, request_id=request_id)
    response = Response(json.dumps(answer), error.status, mimetype="application/problem+json")
    response.headers["X-Request-Id"] = request_id
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _candidate(environ: WSGIEnvironment) -> bool:
    """A validate request of the usual form: POST, a JSON body of bounded length."""
    if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
        return False
    if "HTTP_X_OBJECT_VERSION" in environ or environ.get("SCRIPT_NAME"):
        return False
    content_type = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    length = environ.get("CONTENT_LENGTH", "")
    return content_type == "application/json" and length.isdigit() and 0 < int(length) <= MAX_BODY
