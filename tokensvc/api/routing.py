"""Declaring routes: role check, object version and body parsing, in that order.

Every route is declared with :meth:`ApiBlueprint.operation`, which records
what ``/openapi.json`` publishes, so no route escapes the role check or the
documentation.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Response, after_this_request, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from tokensvc.api.schemas import Body
from tokensvc.auth import bearer_key, require_role
from tokensvc.errors import (
    BadRequest,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from tokensvc.objects.console import ConsoleConnection
from tokensvc.ratelimit import TOKEN_ROUTES
from tokensvc.service_key import ServiceKey
from tokensvc.services import Services
from tokensvc.stores.base import Capability, require_capability

MAX_BODY = 16 * 1024
VERSION_HEADER = "X-Object-Version"


@dataclasses.dataclass
class Call:
    """What a view gets: who calls, the parsed body, and the app's services."""

    key: ServiceKey | None
    body: dict[str, Any]
    services: Services
    object_version: str


@dataclasses.dataclass(frozen=True)
class Operation:
    rule: str
    method: str
    summary: str
    roles: tuple[str, ...]
    body: Body | Callable[[Services], Body] | None
    responses: dict[int, str]
    # What only some backends can do answers 501 elsewhere (after the role check).
    needs: Capability | None = None
    # Query parameters, by name: the JSON schema /openapi.json publishes (the view checks).
    query: Mapping[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


View = Callable[..., Response | tuple[Any, int] | Any]


class ApiBlueprint(Blueprint):
    def __init__(self, name: str, import_name: str) -> None:
        super().__init__(name, import_name)
        self.operations: list[Operation] = []
        self._by_view: dict[str, Operation] = {}

    def operation(
        self,
        rule: str,
        method: str,
        *,
        summary: str,
        roles: tuple[str, ...] = (),
        body: Body | Callable[[Services], Body] | None = None,
        responses: dict[int, str],
        needs: Capability | None = None,
        query: Mapping[str, dict[str, Any]] | None = None,
    ) -> Callable[[View], View]:
        op = Operation(rule, method, summary, roles, body, responses, needs, query or {})
        self.operations.append(op)

        def decorate(view: View) -> View:
            @functools.wraps(view)
            def handle(**path: Any) -> Any:
                return view(_prepare_call(op), **path)

            self.add_url_rule(rule, view.__name__, handle, methods=[method])
            self._by_view[view.__name__] = op
            return view

        return decorate

    def operation_of(self, view: View) -> Operation:
        """The declaration of one of this blueprint's views."""
        return self._by_view[view.__name__]


def services() -> Services:
    found: Services = current_app.extensions["tokensvc"]
    return found


def _prepare_call(op: Operation) -> Call:
    svc = services()
    key = None
    if op.roles:
        # Failed key checks and invalid tokens are counted per client address: over the
        # limit, 429 before the key or the token is looked up (tokensvc/ratelimit.py).
        tokens, address = op.rule in TOKEN_ROUTES, request.remote_addr or ""
        key = svc.limiter.authenticate(
            svc.authenticator,
            lambda: bearer_key(request.headers.get("Authorization")),
            address,
            token=tokens,
        )
        require_role(key, op.roles)
        if tokens:
            after_this_request(svc.limiter.count_invalid_tokens(address))
    if op.needs is not None:
        require_capability(svc.store.capabilities, op.needs)
    version = requested_version()
    body: dict[str, Any] = {}
    if op.body is not None:
        schema = op.body if isinstance(op.body, Body) else op.body(svc)
        body = schema.parse(read_json_object())
    return Call(key, body, svc, version)


def requested_version() -> str:
    """The ConsoleConnection version the caller asked for (406 for any other)."""
    asked = request.headers.get(VERSION_HEADER)
    if asked is None:
        return ConsoleConnection.VERSION
    if asked not in ConsoleConnection.VERSIONS:
        raise NotAcceptable(
            f"{VERSION_HEADER} {asked!r} is not one of {', '.join(ConsoleConnection.VERSIONS)}"
        )
    return asked


def read_json_object() -> dict[str, Any]:
    """The request's JSON object; an empty body is an empty object."""
    if (request.content_length or 0) > MAX_BODY:
        raise PayloadTooLarge(f"request bodies are limited to {MAX_BODY} bytes")
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise PayloadTooLarge(f"request bodies are limited to {MAX_BODY} bytes") from None
    # A chunked body (no Content-Length) is cut at MAX_BODY without an error:
    # one more byte from the server's (terminated) input tells a cut one.
    cut = request.content_length is None and len(raw) >= MAX_BODY
    if cut and request.environ["wsgi.input"].read(1):
        raise PayloadTooLarge(f"request bodies are limited to {MAX_BODY} bytes")
    return json_object(raw, request.mimetype)


def json_object(raw: bytes, mimetype: str) -> dict[str, Any]:
    """A request body's JSON object; an empty body is an empty object."""
    if not raw.strip():
        return {}
    if mimetype != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data
