"""Instances: created and moved by compute hosts (moves are admin-only)."""

from __future__ import annotations

from flask import Response

from tokensvc.api import schemas
from tokensvc.api.routing import ApiBlueprint, Call
from tokensvc.api.views import managed_instance, path_uuid
from tokensvc.auth import require_host
from tokensvc.errors import Forbidden, NotFound
from tokensvc.objects.instance import Instance

bp = ApiBlueprint("instances", __name__)
MANAGERS = ("compute", "admin")


@bp.operation(
    "/v1/instances/<uuid>",
    "PUT",
    summary="Create or update an instance; moving it to another host revokes its consoles",
    roles=MANAGERS,
    body=schemas.INSTANCE,
    responses={200: "Instance", 201: "Instance"},
)
def put_instance(call: Call, uuid: str) -> tuple[dict[str, object], int]:
    instance = Instance(uuid=path_uuid(uuid), host=call.body["host"])
    assert call.key is not None
    require_host(call.key, instance.host)
    try:
        current = call.services.store.get_instance(instance.uuid)
    except NotFound:
        current = None
    if current is not None and current.host != instance.host and call.key.role != "admin":
        raise Forbidden("moving an instance to another compute host needs an admin key")
    written = call.services.store.put_instance(instance)
    return instance.to_primitive(), 201 if written.created else 200


@bp.operation(
    "/v1/instances/<uuid>",
    "DELETE",
    summary="Delete an instance and revoke all its consoles",
    roles=MANAGERS,
    responses={204: ""},
)
def delete_instance(call: Call, uuid: str) -> Response:
    instance = managed_instance(call, uuid)
    call.services.store.delete_instance(instance.uuid)
    return Response(status=204)
