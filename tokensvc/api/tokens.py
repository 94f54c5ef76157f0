"""Tokens: validate (the proxies' hot path) and revoke one token."""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from tokensvc import tokens
from tokensvc.api import schemas
from tokensvc.api.routing import ApiBlueprint, Call
from tokensvc.api.sessions import session_event
from tokensvc.api.views import HIDDEN, render_connection
from tokensvc.auth import require_host, require_proxy
from tokensvc.errors import AlreadyConnected, InvalidToken
from tokensvc.objects.console import ConsoleConnection
from tokensvc.stores.base import Capability, ValidConsole
from tokensvc.stores.leases import ConsoleKey, LeaseRecord

bp = ApiBlueprint("tokens", __name__)


@bp.operation(
    "/v1/tokens/validate",
    "POST",
    summary="Validate a token: the console it opens",
    roles=("proxy",),
    body=schemas.VALIDATE,
    responses={200: "Validated"},
)
def validate(call: Call) -> Response:
    found = _live_console(call, call.body["token"], call.body.get("console_type"))
    connection_json = found.connection_json
    if call.object_version != ConsoleConnection.VERSION:
        connection = ConsoleConnection.from_primitive(json.loads(connection_json))
        primitive = connection.to_primitive(call.object_version, exclude=HIDDEN)
        connection_json = json.dumps(primitive, separators=(",", ":")).encode()
    # The cached JSON goes out as it is: no parse, no re-serialisation on a hit.
    return Response(b'{"connection":' + connection_json + b"}", mimetype="application/json")


def _live_console(call: Call, token: str, console_type: str | None = None) -> ValidConsole:
    """The console a token opens: unknown, expired, malformed and other types alike fail."""
    services = call.services
    found = None
    if tokens.is_well_formed(token):
        token_hash = tokens.hash_token(token)
        found = services.store.lookup(token_hash)
        if services.cached is None:
            services.metrics.validate.labels("database").inc()
    if found is None or (console_type is not None and found.console_type != console_type):
        services.metrics.validate.labels("invalid").inc()
        raise InvalidToken()
    return found


@bp.operation(
    "/v1/tokens/connect",
    "POST",
    summary="Take the console port's lease for a user the proxy is connecting",
    roles=("proxy",),
    body=schemas.CONNECT,
    responses={200: "Connected"},
    needs=Capability.LEASES,
)
def connect(call: Call) -> dict[str, Any]:
    assert call.key is not None
    proxy_id = call.body["proxy_id"]
    require_proxy(call.key, proxy_id)
    found = _live_console(call, call.body["token"])
    connection = ConsoleConnection.from_primitive(json.loads(found.connection_json))
    console = ConsoleKey(connection.instance_uuid, connection.host, connection.port)
    lease = call.services.leases.acquire(console, proxy_id, call.body.get("client"))
    if lease is None:
        call.services.metrics.sessions.labels("refused").inc()
        raise AlreadyConnected("this console already has a user")
    session_event(call.services.metrics, "connect", LeaseRecord(lease, console))
    connection.obj_set({"connected": True, "lease": lease})
    return {"connection": render_connection(call, connection), "lease": lease.to_primitive()}


@bp.operation(
    "/v1/tokens/revoke",
    "POST",
    summary="Revoke one token",
    roles=("compute", "admin"),
    body=schemas.TOKEN,
    responses={204: ""},
)
def revoke(call: Call) -> Response:
    store = call.services.store
    token = call.body["token"]
    connection = None
    if tokens.is_well_formed(token):
        connection = store.get_by_token_hash(tokens.hash_token(token))
    if connection is None:
        raise InvalidToken()
    assert call.key is not None and connection.token_hash is not None
    require_host(call.key, store.get_instance(connection.instance_uuid).host)
    if not store.revoke_token(connection.token_hash):
        raise InvalidToken()  # revoked concurrently
    return Response(status=204)
