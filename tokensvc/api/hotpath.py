"""Validate as a plain WSGI function in front of Flask: the proxies' hot path.

Flask's request machinery (contexts, URL matching, hooks) cost about as much CPU as
everything validate itself does (bench/: about 0.75 of the naive cache floor through
Flask). This layer answers validate requests of the usual form (POST, a JSON body, no
X-Object-Version) on its own, every outcome included: the key check and the body schema
are the route's own declaration, the view is the route's view, failures answer through
tokensvc/api/problems.py as Flask's error handlers do, and the latency metric and the
rate limiter count as Flask's hooks do. Once it has started it never hands a request
on to Flask: that would run validate (and a hanging database's timeout) a second time.
Only requests of another form go to Flask, untouched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

from tokensvc.api import tokens
from tokensvc.api.problems import problem_of, problem_response
from tokensvc.api.routing import MAX_BODY, Call, json_object
from tokensvc.api.schemas import Body
from tokensvc.auth import bearer_key, require_role
from tokensvc.metrics import status_label
from tokensvc.objects.console import ConsoleConnection

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from tokensvc.services import Services

PATH = "/v1/tokens/validate"


class ValidateHotPath:
    """WSGI middleware: validate's requests of the usual form without Flask."""

    def __init__(self, app: WSGIApplication, services: Services) -> None:
        self.app = app
        self.services = services
        self.latency = services.metrics.request_latency
        self.operation = tokens.bp.operation_of(tokens.validate)
        assert self.operation.rule == PATH and isinstance(self.operation.body, Body)
        self.body = self.operation.body

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not _candidate(environ):
            return self.app(environ, start_response)
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        address = environ.get("REMOTE_ADDR") or ""
        try:
            response = self._validate(environ, address)
        except Exception as error:  # answered here, never by a second run through Flask
            found = problem_of(error, request_id)
            response = problem_response(found, instance=PATH, request_id=request_id)
        self.services.limiter.count_invalid_tokens(address)(response)
        response.headers["X-Request-Id"] = request_id
        elapsed = time.perf_counter() - started
        self.latency.labels(PATH, "POST", status_label(response.status_code)).observe(elapsed)
        return response(environ, start_response)

    def _validate(self, environ: WSGIEnvironment, address: str) -> Response:
        """What the Flask route does for this request, in the same order."""
        services = self.services
        # The key is checked before any byte of the body is read, so that a client
        # without one cannot hold a request thread by sending its body slowly.
        key = services.limiter.authenticate(
            services.authenticator,
            lambda: bearer_key(environ.get("HTTP_AUTHORIZATION")),
            address,
            token=True,
        )
        require_role(key, self.operation.roles)
        raw = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        body = self.body.parse(json_object(raw, "application/json"))
        found = tokens.validate(Call(key, body, services, ConsoleConnection.VERSION))
        assert isinstance(found, Response)  # (the view's type covers every view)
        return found


def _candidate(environ: WSGIEnvironment) -> bool:
    """A validate request of the usual form: POST, a JSON body of bounded length."""
    if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
        return False
    if "HTTP_X_OBJECT_VERSION" in environ or environ.get("SCRIPT_NAME"):
        return False
    content_type = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    length = environ.get("CONTENT_LENGTH", "")
    return content_type == "application/json" and length.isdigit() and 0 < int(length) <= MAX_BODY
