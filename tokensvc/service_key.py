"""A service key as the API sees it: who calls, in which role, scoped to what.

Kept apart from its storage (tokensvc/db/service_keys.py), so that the API layer
and the rate limiter name a caller without importing the database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

ROLES = ("admin", "compute", "proxy")


@dataclasses.dataclass(frozen=True)
class ServiceKey:
    id: str
    role: str
    host: str | None  # the compute host a compute key may manage
    proxy_id: str | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def usable(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
