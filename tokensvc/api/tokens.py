"""Tokens: validate (the proxies' hot path) and revoke one token."""

from __future__ import annotations

import json

from flask import Response

from tokensvc import tokens
from tokensvc.api import schemas
from tokensvc.api.routing import ApiBlueprint, Call
from tokensvc.api.views import HIDDEN
from tokensvc.auth import require_host
from tokensvc.errors import InvalidToken
from tokensvc.objects.console import ConsoleConnection

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
    services = call.services
    token = call.body["token"]
    found = None
    if tokens.is_well_formed(token):
        found = services.store.lookup(tokens.hash_token(token))
        if services.cached is None:
            services.metrics.validate.labels("database").inc()
    wanted_type = call.body.get("console_type")
    if found is None or (wanted_type is not None and found.console_type != wanted_type):
        services.metrics.validate.labels("invalid").inc()
        raise InvalidToken()
    connection_json = found.connection_json
    if call.object_version != ConsoleConnection.VERSION:
        connection = ConsoleConnection.from_primitive(json.loads(connection_json))
        primitive = connection.to_primitive(call.object_version, exclude=HIDDEN)
        connection_json = json.dumps(primitive, separators=(",", ":")).encode()
    # The cached JSON goes out as it is: no parse, no re-serialisation on a hit.
    return Response(b'{"connection":' + connection_json + b"}", mimetype="application/json")


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
