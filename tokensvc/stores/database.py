"""The database store: the source of truth. All SQL of the service lives here."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, RowMapping

from tokensvc.db.models import Base
from tokensvc.errors import NotFound
from tokensvc.objects.console import ConsoleConnection, utcnow
from tokensvc.objects.instance import Instance
from tokensvc.stores.base import VALIDATE_EXCLUDES, InstanceWrite, PurgeResult, ValidConsole

instances = Base.metadata.tables["instances"]
consoles = Base.metadata.tables["console_connections"]
invalidations = Base.metadata.tables["invalidations"]

# Columns a console object is read from (everything but bookkeeping).
_CONSOLE_COLUMNS = (
    consoles.c.instance_uuid,
    consoles.c.host,
    consoles.c.port,
    consoles.c.token_hash,
    consoles.c.access_url,
    consoles.c.options,
    consoles.c.expires,
    consoles.c.console_type,
)


def _console_from_row(row: RowMapping) -> ConsoleConnection:
    values = dict(row)
    if values["console_type"] is None:
        del values["console_type"]
    connection = ConsoleConnection(**values, connected=False)
    connection.obj_reset_changes()
    return connection


def valid_console(connection: ConsoleConnection) -> ValidConsole:
    """What validate answers for a live console (SPEC: without connected and lease)."""
    primitive = connection.to_primitive(exclude=VALIDATE_EXCLUDES)
    return ValidConsole(
        connection.console_type, json.dumps(primitive, separators=(",", ":")).encode()
    )


class DatabaseStore:
    """:class:`~tokensvc.stores.base.TokenStore` on SQLAlchemy Core.

    With ``outbox`` on (a cache tier is in front), every revocation also writes
    its token hashes to ``invalidations`` in the same transaction.
    """

    def __init__(self, engine: Engine, *, outbox: bool = False) -> None:
        self.engine = engine
        self.outbox = outbox

    def _revoked(self, conn: Connection, token_hashes: Sequence[str | None]) -> list[str]:
        revoked = [h for h in token_hashes if h is not None]
        if self.outbox and revoked:
            now = utcnow()
            conn.execute(
                invalidations.insert(), [{"token_hash": h, "created_at": now} for h in revoked]
            )
        return revoked

    def _hashes_of(self, conn: Connection, instance_uuid: str) -> list[str | None]:
        query = sa.select(consoles.c.token_hash).where(consoles.c.instance_uuid == instance_uuid)
        return list(conn.execute(query.with_for_update()).scalars())

    # -- instances --------------------------------------------------------------
    def put_instance(self, instance: Instance) -> InstanceWrite:
        now = utcnow()
        with self.engine.begin() as conn:
            current = self._lock_instance(conn, instance.uuid)
            if current is None:
                conn.execute(
                    instances.insert().values(
                        uuid=instance.uuid, host=instance.host, created_at=now, updated_at=now
                    )
                )
                instance.created_at = now
                return InstanceWrite(created=True, revoked=[])
            revoked: list[str] = []
            if current["host"] != instance.host:
                # The consoles point at the old host: revoke rather than mislead.
                revoked = self._revoked(conn, self._hashes_of(conn, instance.uuid))
                conn.execute(consoles.delete().where(consoles.c.instance_uuid == instance.uuid))
                conn.execute(
                    instances.update()
                    .where(instances.c.uuid == instance.uuid)
                    .values(host=instance.host, updated_at=now)
                )
            instance.created_at = current["created_at"]
            return InstanceWrite(created=False, revoked=revoked)

    def get_instance(self, uuid: str) -> Instance:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(instances.c.uuid, instances.c.host, instances.c.created_at).where(
                    instances.c.uuid == uuid
                )
            ).first()
        if row is None:
            raise NotFound(f"instance {uuid} not found")
        return Instance(**row._mapping)

    def delete_instance(self, uuid: str) -> list[str]:
        with self.engine.begin() as conn:
            if self._lock_instance(conn, uuid) is None:
                raise NotFound(f"instance {uuid} not found")
            revoked = self._revoked(conn, self._hashes_of(conn, uuid))
            # Explicit, so the result does not depend on the FK cascade being enforced.
            conn.execute(consoles.delete().where(consoles.c.instance_uuid == uuid))
            conn.execute(instances.delete().where(instances.c.uuid == uuid))
        return revoked

    @staticmethod
    def _lock_instance(conn: Connection, uuid: str) -> RowMapping | None:
        query = sa.select(instances.c.host, instances.c.created_at).where(instances.c.uuid == uuid)
        return conn.execute(query.with_for_update()).mappings().first()

    # -- consoles ---------------------------------------------------------------
    def save_console(self, connection: ConsoleConnection) -> str | None:
        now = utcnow()
        values = {
            "token_hash": connection.token_hash,
            "access_url": connection.access_url,
            "options": connection.options,
            "expires": connection.expires,
            "console_type": connection.console_type,
            "updated_at": now,
        }
        key = {
            "instance_uuid": connection.instance_uuid,
            "host": connection.host,
            "port": connection.port,
        }
        with self.engine.begin() as conn:
            instance = self._lock_instance(conn, connection.instance_uuid)
            if instance is None:
                raise NotFound(f"instance {connection.instance_uuid} not found")
            values["compute_host"] = instance["host"]
            same_port = [consoles.c[name] == value for name, value in key.items()]
            old_hash = conn.execute(
                sa.select(consoles.c.token_hash).where(*same_port).with_for_update()
            ).first()
            replaced = None if old_hash is None else old_hash.token_hash
            if old_hash is None:
                conn.execute(consoles.insert().values(**key, **values, created_at=now))
            else:
                conn.execute(consoles.update().where(*same_port).values(**values))
            if replaced == connection.token_hash:  # saved again with its own token
                replaced = None
            self._revoked(conn, [replaced])
        connection.connected = False
        connection.obj_reset_changes()
        return replaced

    def lookup(self, token_hash: str) -> ValidConsole | None:
        found = self.get_by_token_hash(token_hash)
        if found is None or found.is_expired():
            return None
        return valid_console(found)

    def get_by_token_hash(self, token_hash: str) -> ConsoleConnection | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(*_CONSOLE_COLUMNS).where(consoles.c.token_hash == token_hash)
                )
                .mappings()
                .first()
            )
        return None if row is None else _console_from_row(row)

    def list_by_instance(self, instance_uuid: str) -> list[ConsoleConnection]:
        with self.engine.connect() as conn:
            known = conn.execute(
                sa.select(instances.c.uuid).where(instances.c.uuid == instance_uuid)
            ).first()
            if known is None:
                raise NotFound(f"instance {instance_uuid} not found")
            rows = conn.execute(
                sa.select(*_CONSOLE_COLUMNS)
                .where(consoles.c.instance_uuid == instance_uuid)
                .order_by(consoles.c.host, consoles.c.port)
            ).mappings()
            return [_console_from_row(row) for row in rows]

    def rotate_token(self, old_hash: str, connection: ConsoleConnection) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                consoles.update()
                .where(consoles.c.token_hash == old_hash)
                .values(
                    token_hash=connection.token_hash,
                    expires=connection.expires,
                    updated_at=utcnow(),
                )
            )
            if result.rowcount == 1:
                self._revoked(conn, [old_hash])
        return result.rowcount == 1

    def revoke_token(self, token_hash: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(consoles.delete().where(consoles.c.token_hash == token_hash))
            if result.rowcount == 1:
                self._revoked(conn, [token_hash])
        return result.rowcount == 1

    def revoke_all(self, instance_uuid: str) -> list[str]:
        with self.engine.begin() as conn:
            revoked = self._revoked(conn, self._hashes_of(conn, instance_uuid))
            conn.execute(consoles.delete().where(consoles.c.instance_uuid == instance_uuid))
        return revoked

    # -- invalidations outbox -----------------------------------------------------------
    def pending_invalidations(self, limit: int = 1000) -> list[str]:
        with self.engine.connect() as conn:
            query = sa.select(invalidations.c.token_hash).order_by(invalidations.c.id).limit(limit)
            return list(conn.execute(query).scalars())

    def clear_invalidations(self, token_hashes: Sequence[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(invalidations.delete().where(invalidations.c.token_hash.in_(token_hashes)))

    def purge_expired(
        self, compute_host: str, batch_size: int, now: dt.datetime | None = None
    ) -> PurgeResult:
        """Delete in short transactions so no batch holds locks for long."""
        cutoff = now or utcnow()
        key = sa.tuple_(consoles.c.instance_uuid, consoles.c.host, consoles.c.port)
        expired = (
            sa.select(consoles.c.instance_uuid, consoles.c.host, consoles.c.port)
            .where(consoles.c.compute_host == compute_host, consoles.c.expires <= cutoff)
            .order_by(consoles.c.expires)
            .limit(batch_size)
        )
        deleted = batches = 0
        while True:
            with self.engine.begin() as conn:
                keys = [tuple(row) for row in conn.execute(expired)]
                if keys:
                    deleted += conn.execute(consoles.delete().where(key.in_(keys))).rowcount
                    batches += 1
            if len(keys) < batch_size:
                return PurgeResult(deleted, batches)
