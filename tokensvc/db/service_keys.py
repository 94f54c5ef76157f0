"""Service keys in the database: created with the CLI, stored only as hashes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy import Engine

from tokensvc.db.models import Base
from tokensvc.objects.console import utcnow
from tokensvc.service_key import ROLES as ROLES  # (the CLI's choices, with the store)
from tokensvc.service_key import ServiceKey as ServiceKey

service_keys = Base.metadata.tables["service_keys"]
_COLUMNS = [service_keys.c[f.name] for f in dataclasses.fields(ServiceKey)]


class ServiceKeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        key_hash: str,
        role: str,
        *,
        host: str | None = None,
        proxy_id: str | None = None,
        expires_at: dt.datetime | None = None,
    ) -> ServiceKey:
        key = ServiceKey(uuid.uuid4().hex, role, host, proxy_id, utcnow(), expires_at, None)
        with self.engine.begin() as conn:
            conn.execute(service_keys.insert().values(key_hash=key_hash, **dataclasses.asdict(key)))
        return key

    def find(self, key_hash: str) -> ServiceKey | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(*_COLUMNS).where(service_keys.c.key_hash == key_hash))
                .mappings()
                .first()
            )
        return None if row is None else ServiceKey(**row)

    def list(self) -> list[ServiceKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*_COLUMNS).order_by(service_keys.c.created_at))
            return [ServiceKey(**row) for row in rows.mappings()]

    def revoke(self, key_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                service_keys.update()
                .where(service_keys.c.id == key_id, service_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return result.rowcount == 1

    def any_usable_admin(self) -> bool:
        now = utcnow()
        return any(k.role == "admin" and k.usable(now) for k in self.list())
