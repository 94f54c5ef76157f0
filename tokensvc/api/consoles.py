"""Consoles: registered by compute hosts, listed and revoked per instance."""

from __future__ import annotations

from typing import Any

from flask import Response

from tokensvc.api import schemas
from tokensvc.api.routing import ApiBlueprint, Call
from tokensvc.api.views import access_url_with_token, managed_instance, render_connection
from tokensvc.auth import require_host
from tokensvc.errors import Forbidden, ValidationFailed
from tokensvc.objects.console import ConsoleConnection
from tokensvc.objects.fields import DateTimeField

bp = ApiBlueprint("consoles", __name__)
MANAGERS = ("compute", "admin")
_DATETIME = DateTimeField()


@bp.operation(
    "/v1/consoles",
    "POST",
    summary="Register a console (port, or the next free of ports); the same port again "
    "rotates its token",
    roles=MANAGERS,
    body=lambda services: schemas.register_body(services.settings.max_token_ttl),
    responses={201: "Registered"},
)
def register(call: Call) -> tuple[dict[str, Any], int]:
    fields = dict(call.body)
    ttl = fields.pop("ttl", call.services.settings.token_ttl)
    ports, force = fields.pop("ports", []), fields.pop("force", False)
    if ("port" in fields) == bool(ports):
        raise ValidationFailed({"port": "give either port or ports"})
    assert call.key is not None
    if force and call.key.role != "admin":
        raise Forbidden("force (taking over a port in use) needs an admin key")
    key = call.key
    connection = ConsoleConnection(**fields)
    # The compute host's scope is checked on the row the write locks (404, then 403).
    token = connection.create(
        call.services.store,
        ttl=ttl,
        ports=ports,
        force=force,
        authorize=lambda compute_host: require_host(key, compute_host),
    )
    return {
        "token": token,
        "access_url": access_url_with_token(connection.access_url, token),
        "expires_at": _DATETIME.to_primitive(connection.expires),
        "connection": render_connection(call, connection),
    }, 201


@bp.operation(
    "/v1/instances/<uuid>/consoles",
    "GET",
    summary="List the consoles of an instance (never tokens or their hashes)",
    roles=MANAGERS,
    responses={200: "ConnectionList"},
    database_only=True,
)
def list_consoles(call: Call, uuid: str) -> dict[str, Any]:
    instance = managed_instance(call, uuid)
    listed = ConsoleConnection.list_by_instance(call.services.store, instance.uuid)
    return {"connections": [render_connection(call, c) for c in listed]}


@bp.operation(
    "/v1/instances/<uuid>/consoles",
    "DELETE",
    summary="Revoke every console token of an instance",
    roles=MANAGERS,
    responses={204: ""},
)
def revoke_all(call: Call, uuid: str) -> Response:
    instance = managed_instance(call, uuid)
    call.services.store.revoke_all(instance.uuid)
    return Response(status=204)
