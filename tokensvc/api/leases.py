"""Leases and proxies: who is on which console, heartbeats, and cutting sessions off."""

from __future__ import annotations

import re
from typing import Any

from flask import Response, request

from tokensvc.api.routing import ApiBlueprint, Call
from tokensvc.api.sessions import session_event
from tokensvc.auth import require_proxy
from tokensvc.closefeed import CURSOR_PATTERN
from tokensvc.errors import NotFound, ValidationFailed
from tokensvc.stores.base import Capability
from tokensvc.stores.leases import LeaseRecord

bp = ApiBlueprint("leases", __name__)


@bp.operation(
    "/v1/leases",
    "GET",
    summary="Every live session, optionally of one proxy or one compute host",
    roles=("admin",),
    needs=Capability.LEASES,
    responses={200: "LeaseList"},
    query={"proxy_id": {"type": "string"}, "compute_host": {"type": "string"}},
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
    needs=Capability.LEASES,
    responses={204: ""},
)
def disconnect(call: Call, lease_id: str) -> Response:
    assert call.key is not None
    released = call.services.leases.release(lease_id, proxy_id=call.key.proxy_id)
    if released is not None:
        session_event(call.services.metrics, "disconnect", released)
    return Response(status=204)


def _on_host(call: Call, record: LeaseRecord, compute_host: str | None) -> bool:
    """Whether the lease's instance lives on ``compute_host`` (a gone instance: no)."""
    try:
        return call.services.store.get_instance(record.console.instance_uuid).host == compute_host
    except NotFound:
        return False


@bp.operation(
    "/v1/leases/<lease_id>",
    "DELETE",
    summary="Force-disconnect: the holding proxy's close feed (or next heartbeat) closes it",
    roles=("admin", "compute"),
    needs=Capability.LEASES,
    responses={202: ""},
)
def force_disconnect(call: Call, lease_id: str) -> Response:
    assert call.key is not None
    found = call.services.leases.find(lease_id)
    if found is None or (call.key.role == "compute" and not _on_host(call, found, call.key.host)):
        # A compute key cannot tell another host's lease from a missing one.
        raise NotFound("no such lease")
    if call.services.leases.force_close(lease_id):
        session_event(call.services.metrics, "forced", found, reason="forced")
    return Response(status=202)


@bp.operation(
    "/v1/proxies/<proxy_id>/heartbeat",
    "POST",
    summary="Renew all the proxy's leases; the answer lists sessions it must close",
    roles=("proxy",),
    needs=Capability.LEASES,
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
    "/v1/proxies/<proxy_id>/closes",
    "GET",
    summary="The close feed: waits (?wait=SECONDS) until the proxy's closes differ from ?cursor=",
    roles=("proxy",),
    needs=Capability.LEASES,
    responses={200: "CloseFeed"},
    query={
        "cursor": {"type": "string", "pattern": CURSOR_PATTERN, "description": "the last answer's"},
        "wait": {"type": "number", "minimum": 0, "maximum": 3600, "description": "seconds"},
    },
)
def close_feed(call: Call, proxy_id: str) -> dict[str, Any]:
    assert call.key is not None
    require_proxy(call.key, proxy_id)
    cursor, wait = _feed_query()
    answer = call.services.closes.wait(proxy_id, cursor, wait)
    close = [{"lease_id": lease_id, "reason": reason} for lease_id, reason in answer.close]
    return {"close": close, "cursor": answer.cursor, "busy": answer.busy}


def _feed_query() -> tuple[str | None, float]:
    """``cursor`` (from the previous answer; none: answer at once) and ``wait`` seconds."""
    cursor = request.args.get("cursor")
    if cursor is not None and not re.fullmatch(CURSOR_PATTERN, cursor):
        raise ValidationFailed({"cursor": "not a cursor of this feed"})
    raw = request.args.get("wait", "0")
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= 3600:  # also refuses nan and inf
        raise ValidationFailed({"wait": "seconds, from 0 to 3600 (the service caps waits)"})
    return cursor, wait


@bp.operation(
    "/v1/proxies/<proxy_id>/leases",
    "DELETE",
    summary="A restarted proxy drops the leases of its previous life",
    roles=("proxy",),
    needs=Capability.LEASES,
    responses={204: ""},
)
def reset_proxy(call: Call, proxy_id: str) -> Response:
    assert call.key is not None
    require_proxy(call.key, proxy_id)
    call.services.leases.release_proxy(proxy_id)
    return Response(status=204)
