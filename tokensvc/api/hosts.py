"""Per compute host operations: purge its expired consoles now."""

from __future__ import annotations

from tokensvc.api.routing import ApiBlueprint, Call
from tokensvc.api.views import path_host
from tokensvc.auth import require_host
from tokensvc.stores.base import Capability, console_records

bp = ApiBlueprint("hosts", __name__)


@bp.operation(
    "/v1/hosts/<host>/consoles/expired",
    "DELETE",
    summary="Delete the expired consoles of a compute host now, in batches",
    roles=("compute", "admin"),
    needs=Capability.RECORDS,
    responses={200: "PurgeResult"},
)
def purge_expired(call: Call, host: str) -> dict[str, int]:
    host = path_host(host)
    assert call.key is not None
    require_host(call.key, host)
    batch = call.services.settings.purge_batch
    result = console_records(call.services.store).purge_expired(host, batch)
    return {"deleted": result.deleted, "batches": result.batches}
