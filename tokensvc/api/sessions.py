"""One log line and one metric per session event (never a token or its hash).

The event's fields go as ``extra=``: tokensvc.logs writes them as ``key=value`` in
text and as keys of the line's object in json, so the audit trail is searchable.
"""

from __future__ import annotations

import logging

from tokensvc.metrics import Metrics
from tokensvc.objects.console import utcnow
from tokensvc.stores.leases import LeaseRecord

log = logging.getLogger("tokensvc.sessions")


def session_event(
    metrics: Metrics, event: str, record: LeaseRecord, reason: str | None = None
) -> None:
    lease, console = record
    metrics.sessions.labels(event).inc()
    fields = {
        "event": event,
        "lease_id": lease.id,
        "proxy_id": lease.proxy_id,
        "console": f"{console.instance_uuid}/{console.host}:{console.port}",
        "client": lease.client,
        "reason": reason or lease.close_reason,
        "duration": round((utcnow() - lease.since).total_seconds()),
    }
    log.info("session %s", event, extra=fields)
