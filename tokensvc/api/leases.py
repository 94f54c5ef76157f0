"""Leases and proxies: who is on which console, heartbeats, and cutting sessions off."""

from __future__ import annotations

from typing import Any

from flask import Response, request

from tokensvc.api.routing import ApiBlueprint, Call
from tokensvc.api.sessions import session_event
from tokensvc.auth import require_host, require_proxy
from tokensvc.errors import Forbidden, NotFound

bp = ApiBlueprint("leases", __name__)


@bp.operation(
    "/v1/leases",
    "GET",
    summary="Every live session, optionally of one proxy or one compute host",
    roles=("admin",),
    database_only=True,
    responses={200: "LeaseList"},
)
def list_leases(call: Call) -> dict[str, Any]:
    records = call.services.leases.list(
        proxy_id=request.args.get("proxy_id"), compute_host=request.args.get("compute_host")
    )
    # Each primitive also names its console, which the lease object itself does not carry.
    return {
        "leases": [
            lease.to_primitive() | {"console": console._asdict()} for lease, console in records
        ]
    }


@bp.operation(
    "/v1/leases/<lease_id>/disconnect",
    "POST",
    summary="The proxy's user left: free the port (a no-op for an old or unknown lease)",
    roles=("proxy",),
    database_only=True,
    responses={204: ""},
)
def disconnect(call: Call, lease_id: str) -> Response:
    assert call.key is not None
    released = call.services.leases.release(lease_id, proxy_id=call.key.proxy_id)
    if released is not None:
        session_event(call.services.metrics, "disconnect", released)
    return Response(status=204)


@bp.operation(
    "/v1/leases/<lease_id>",
    "DELETE",
    summary="Force-disconnect: the holding proxy closes the session at its next heartbeat",
    roles=("admin", "compute"),
    database_only=True,
    responses={202: ""},
)
def force_disconnect(call: Call, lease_id: str) -> Response:
    assert call.key is not None
    found = call.services.leases.find(lease_id)
    if found is None:
        raise NotFound("no such lease")
    if call.key.role == "compute":
        try:
            instance = call.services.store.get_instance(found.console.instance_uuid)
        except NotFound:
            raise Forbidden("the lease's instance is gone: only an admin may close it") from None
        require_host(call.key, instance.host)
    if call.services.leases.force_close(lease_id):
        session_event(call.services.metrics, "forced", found, reason="forced")
    return Response(status=202)


@bp.operation(
    "/v1/proxies/<proxy_id>/heartbeat",
    "POST",
    summary="Renew all the proxy's leases; the answer lists sessions it must close",
    roles=("proxy",),
    database_only=True,
    responses={200: "Heartbeat"},
)
def heartbeat(call: Call, proxy_id: str) -> dict[str, Any]:
    assert call.key is not None
    require_proxy(call.key, proxy_id)
    renewed, closing = call.services.leases.heartbeat(
        proxy_id, enforce_expiry=call.services.settings.enforce_session_timeout
    )
    close = [{"lease_id": lease.id, "reason": lease.close_reason} for lease, _ in closing]
    return {"renewed": renewed, "close": close}


@bp.operation(
    "/v1/proxies/<proxy_id>/leases",
    "DELETE",
    summary="A restarted proxy drops the leases of its previous life",
    roles=("proxy",),
    database_only=True,
    responses={204: ""},
)
def reset_proxy(call: Call, proxy_id: str) -> Response:
    assert call.key is not None
    require_proxy(call.key, proxy_id)
    call.services.leases.release_proxy(proxy_id)
    return Response(status=204)
