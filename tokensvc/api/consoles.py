"""Consoles: registered by compute hosts, listed and revoked per instance."""

from __future__ import annotations

from typing import Any

from flask import Response

from tokensvc.api import schemas
from tokensvc.api.routing import ApiBlueprint, Call
from tokensvc.api.views import (
    access_url_with_token,
    managed_instance,
    render_connection,
    require_own_instance,
)
from tokensvc.errors import Forbidden, ValidationFailed
from tokensvc.networks import host_refusal
from tokensvc.objects.console import ConsoleConnection
from tokensvc.objects.fields import DateTimeField
from tokensvc.stores.base import Capability, console_records, require_capability

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
    check_console_address(call, fields["host"])
    assert call.key is not None
    if force and call.key.role != "admin":
        raise Forbidden("force (taking over a port in use) needs an admin key")
    if ports or force:
        require_capability(call.services.store.capabilities, Capability.PORT_CHOICE)
    key = call.key
    connection = ConsoleConnection(**fields)
    # The compute host's scope is checked on the row the write locks; another
    # host's instance is answered as a missing one.
    token = connection.create(
        call.services.store,
        ttl=ttl,
        ports=ports,
        force=force,
        authorize=lambda host: require_own_instance(key, connection.instance_uuid, host),
    )
    return {
        "token": token,
        "access_url": access_url_with_token(connection.access_url, token),
        "expires_at": _DATETIME.to_primitive(connection.expires),
        "connection": render_connection(call, connection),
    }, 201


def check_console_address(call: Call, host: str) -> None:
    """422 for an address the proxy must not dial (README.md, "Console addresses")."""
    reason = host_refusal(host, call.services.settings.console_networks)
    if reason is not None:
        detail = f"{reason}: refused unless TOKENSVC_CONSOLE_NETWORKS allows it"
        raise ValidationFailed({"host": detail})


@bp.operation(
    "/v1/instances/<uuid>/consoles",
    "GET",
    summary="List the consoles of an instance (never tokens or their hashes)",
    roles=MANAGERS,
    responses={200: "ConnectionList"},
    needs=Capability.RECORDS,
)
def list_consoles(call: Call, uuid: str) -> dict[str, Any]:
    instance = managed_instance(call, uuid)
    listed = console_records(call.services.store).list_by_instance(instance.uuid)
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
