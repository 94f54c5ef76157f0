"""One structured log line and one metric per session event (never a token)."""

from __future__ import annotations

import json
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
    log.info(
        "session %s",
        json.dumps(
            {
                "event": event,
                "lease_id": lease.id,
                "proxy_id": lease.proxy_id,
                "client": lease.client,
                "console": f"{console.instance_uuid}/{console.host}:{console.port}",
                "reason": reason or lease.close_reason,
                "duration": round((utcnow() - lease.since).total_seconds()),
            },
            separators=(",", ":"),
        ),
    )
