"""The database store: the source of truth for instances and consoles (all their SQL).

Every revocation, in one transaction: delete the consoles, write their token
hashes to the ``invalidations`` outbox (when a cache is in front), and mark
the leases on those ports for closing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from tokensvc.db.engine import single_statement
from tokensvc.errors import AlreadyConnected, NotFound, PortsExhausted
from tokensvc.objects.console import Authorize, ConsoleConnection, utcnow
from tokensvc.objects.instance import Instance
from tokensvc.objects.lease import ConsoleLease
from tokensvc.stores.base import (
    BACKEND_CAPABILITIES,
    InstanceWrite,
    PurgeResult,
    ValidConsole,
)
from tokensvc.stores.leases import NotifyCloses, close_leases, closing_transaction, live_leases
from tokensvc.stores.rows import (
    CONSOLE_COLUMNS,
    LOCK_INSTANCE,
    PORT_TOKEN_FOR_UPDATE,
    UPDATE_PORT,
    console_from_row,
    consoles,
    insert_console,
    instances,
    invalidations,
    port_params,
    row_values,
    valid_console,
)

# Built once: constructing a statement costs more than executing a cached one.
_BY_TOKEN_HASH = sa.select(*CONSOLE_COLUMNS).where(
    consoles.c.token_hash == sa.bindparam("token_hash")
)
_CLEAR_INVALIDATIONS = invalidations.delete().where(
    invalidations.c.token_hash.in_(sa.bindparam("hashes", expanding=True))
)


class DatabaseStore:
    """:class:`~tokensvc.stores.base.ConsoleRecords` on SQLAlchemy Core."""

    capabilities = BACKEND_CAPABILITIES["database"]

    def __init__(
        self, engine: Engine, *, outbox: bool = False, reader: Engine | None = None
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        # Single-statement reads of the hot paths (see make_read_engine).
        self.reader = reader or engine
        # Told, after the commit, which proxies' leases a revocation closed (the close feed).
        self.notify_closes: NotifyCloses | None = None

    def _revoking(self) -> contextlib.AbstractContextManager[Connection]:
        """A transaction that may close leases: the close feed hears of it after the commit."""
        return closing_transaction(self.engine, self.notify_closes)

    # -- revocation, in the caller's transaction ------------------------------------------
    def _revoked(self, conn: Connection, token_hashes: Sequence[str | None]) -> list[str]:
        revoked = [h for h in token_hashes if h is not None]
        if self.outbox and revoked:
            rows = [{"token_hash": h, "created_at": utcnow()} for h in revoked]
            conn.execute(invalidations.insert(), rows)
        return revoked

    def _revoke_instance(self, conn: Connection, uuid: str, reason: str) -> list[str]:
        mine = consoles.c.instance_uuid == uuid
        hashes = conn.execute(sa.select(consoles.c.token_hash).where(mine).with_for_update())
        revoked = self._revoked(conn, list(hashes.scalars()))
        conn.execute(consoles.delete().where(mine))
        close_leases(conn, reason, uuid)
        return revoked

    @staticmethod
    def _lock_instance(conn: Connection, uuid: str) -> RowMapping | None:
        return conn.execute(LOCK_INSTANCE, {"uuid": uuid}).mappings().first()

    # -- instances --------------------------------------------------------------------------
    def put_instance(self, instance: Instance) -> InstanceWrite:
        now = utcnow()
        with self._revoking() as conn:
            current = self._lock_instance(conn, instance.uuid)
            if current is None:
                row = {"uuid": instance.uuid, "host": instance.host}
                conn.execute(instances.insert().values(**row, created_at=now, updated_at=now))
                instance.created_at = now
                return InstanceWrite(created=True, revoked=[])
            instance.created_at = current["created_at"]
            if current["host"] == instance.host:
                return InstanceWrite(created=False, revoked=[])
            # The consoles point at the old host: revoke rather than mislead.
            revoked = self._revoke_instance(conn, instance.uuid, "instance-moved")
            conn.execute(
                instances.update()
                .where(instances.c.uuid == instance.uuid)
                .values(host=instance.host, updated_at=now)
            )
            return InstanceWrite(created=False, revoked=revoked)

    def get_instance(self, uuid: str) -> Instance:
        columns = (instances.c.uuid, instances.c.host, instances.c.created_at)
        found = single_statement(self.reader, sa.select(*columns).where(instances.c.uuid == uuid))
        if not found:
            raise NotFound(f"instance {uuid} not found")
        return Instance.obj_load(**found[0])

    def delete_instance(self, uuid: str) -> list[str]:
        with self._revoking() as conn:
            if self._lock_instance(conn, uuid) is None:
                raise NotFound(f"instance {uuid} not found")
            # Explicit, so the result does not depend on the FK cascade being enforced.
            revoked = self._revoke_instance(conn, uuid, "instance-deleted")
            conn.execute(instances.delete().where(instances.c.uuid == uuid))
        return revoked

    # -- consoles ---------------------------------------------------------------------------
    def save_console(
        self,
        connection: ConsoleConnection,
        *,
        ports: Sequence[int] = (),
        force: bool = False,
        authorize: Authorize | None = None,
    ) -> str | None:
        """Insert, or give the same port a new token; with ``ports``, pick the port first.

        The instance row lock serialises registrations of one instance, so two of
        them never pick the same port.
        """
        now = utcnow()
        with self._revoking() as conn:
            instance = self._lock_instance(conn, connection.instance_uuid)
            if instance is None:
                raise NotFound(f"instance {connection.instance_uuid} not found")
            if authorize is not None:
                authorize(instance["host"])
            held = live_leases(conn, connection.instance_uuid)
            if ports:
                connection.port = self._free_port(conn, connection, ports, held)
            elif (connection.host, connection.port) in held and not force:
                raise AlreadyConnected(
                    f"port {connection.port} has a user; an admin may take it with force: true"
                )
            replaced = self._upsert(conn, connection, instance["host"], now)
            self._revoked(conn, [replaced])
            if replaced is not None:
                at = (connection.host, connection.port)
                close_leases(conn, "rotated", connection.instance_uuid, at)
        connection.obj_set({"connected": False, "lease": None})
        connection.obj_reset_changes()
        return replaced

    @staticmethod
    def _upsert(
        conn: Connection, connection: ConsoleConnection, compute_host: str, now: dt.datetime
    ) -> str | None:
        """Write the row; the token hash it replaced (None if new or the same token)."""
        port = port_params(connection)
        old = conn.execute(PORT_TOKEN_FOR_UPDATE, port).first()
        if old is None:
            insert_console(conn, connection, compute_host, now)
            return None
        conn.execute(UPDATE_PORT, port | row_values(connection, compute_host, now))
        return None if old.token_hash == connection.token_hash else old.token_hash

    def import_console(self, connection: ConsoleConnection) -> bool:
        """Insert a console as it is (hash and expiry kept); False if its instance is
        unknown or its port or hash is taken (a newer registration always wins)."""
        try:
            with self.engine.begin() as conn:
                instance = self._lock_instance(conn, connection.instance_uuid)
                if instance is None:
                    return False
                insert_console(conn, connection, instance["host"], utcnow())
        except IntegrityError:
            return False
        return True

    @staticmethod
    def _free_port(
        conn: Connection,
        connection: ConsoleConnection,
        ports: Sequence[int],
        held: dict[tuple[str, int], ConsoleLease],
    ) -> int:
        """A port with no lease and no live token; else the unheld one whose token is oldest."""
        free = [p for p in dict.fromkeys(ports) if (connection.host, p) not in held]
        if not free:
            raise PortsExhausted(
                f"no more ports available: all {len(set(ports))} console ports are in use"
            )
        rows = conn.execute(
            sa.select(consoles.c.port, consoles.c.expires, consoles.c.updated_at).where(
                consoles.c.instance_uuid == connection.instance_uuid,
                consoles.c.host == connection.host,
                consoles.c.port.in_(free),
            )
        ).all()
        now = utcnow()
        live = {
            row.port: row.updated_at for row in rows if row.expires is None or row.expires > now
        }
        unused = [p for p in free if p not in live]
        return unused[0] if unused else min(free, key=lambda p: live[p])

    def lookup(self, token_hash: str) -> ValidConsole | None:
        found = self.get_by_token_hash(token_hash)
        if found is None or found.is_expired():
            return None
        return valid_console(found)

    def get_by_token_hash(self, token_hash: str) -> ConsoleConnection | None:
        rows = single_statement(self.reader, _BY_TOKEN_HASH, {"token_hash": token_hash})
        return console_from_row(rows[0]) if rows else None

    def list_by_instance(self, instance_uuid: str) -> list[ConsoleConnection]:
        with self.engine.connect() as conn:
            known = sa.select(instances.c.uuid).where(instances.c.uuid == instance_uuid)
            if conn.execute(known).first() is None:
                raise NotFound(f"instance {instance_uuid} not found")
            held = live_leases(conn, instance_uuid)
            rows = conn.execute(
                sa.select(*CONSOLE_COLUMNS)
                .where(consoles.c.instance_uuid == instance_uuid)
                .order_by(consoles.c.host, consoles.c.port)
            ).mappings()
            return [console_from_row(r, held.get((r["host"], r["port"]))) for r in rows]

    def revoke_token(self, token_hash: str) -> bool:
        with self._revoking() as conn:
            query = sa.select(consoles.c.instance_uuid, consoles.c.host, consoles.c.port)
            found = conn.execute(query.where(consoles.c.token_hash == token_hash)).first()
            if found is None:
                return False
            conn.execute(consoles.delete().where(consoles.c.token_hash == token_hash))
            self._revoked(conn, [token_hash])
            close_leases(conn, "revoked", found.instance_uuid, (found.host, found.port))
        return True

    def revoke_all(self, instance_uuid: str) -> list[str]:
        with self._revoking() as conn:
            return self._revoke_instance(conn, instance_uuid, "revoked")

    # -- invalidations outbox ---------------------------------------------------------------
    def pending_invalidations(self, limit: int = 1000) -> list[str]:
        with self.engine.connect() as conn:
            query = sa.select(invalidations.c.token_hash).order_by(invalidations.c.id).limit(limit)
            return list(conn.execute(query).scalars())

    def clear_invalidations(self, token_hashes: Sequence[str]) -> None:
        """Once the cache applied them (one idempotent DELETE: one round trip)."""
        single_statement(self.reader, _CLEAR_INVALIDATIONS, {"hashes": list(token_hashes)})

    def is_reachable(self) -> bool:
        """One round trip on the general engine (the readiness check)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def hosts_with_expired(self) -> list[str]:
        """Compute hosts (never console addresses) that have expired consoles."""
        query = sa.select(consoles.c.compute_host).where(consoles.c.expires <= utcnow())
        with self.engine.connect() as conn:
            return list(conn.execute(query.distinct().order_by(consoles.c.compute_host)).scalars())

    def count_expired(self, compute_host: str | None = None) -> int:
        query = sa.select(sa.func.count()).where(consoles.c.expires <= utcnow())
        if compute_host is not None:
            query = query.where(consoles.c.compute_host == compute_host)
        with self.engine.connect() as conn:
            return int(conn.execute(query.select_from(consoles)).scalar_one())

    def purge_expired(
        self,
        compute_host: str,
        batch_size: int,
        on_batch: Callable[[list[str]], None] = lambda hashes: None,
    ) -> PurgeResult:
        """Delete in short transactions so no batch holds locks for long. Leases stay.

        ``on_batch`` gets each batch's token hashes once it is committed.
        """
        cutoff = utcnow()
        key = sa.tuple_(consoles.c.instance_uuid, consoles.c.host, consoles.c.port)
        expired = (
            sa.select(*key.clauses, consoles.c.token_hash)
            .where(consoles.c.compute_host == compute_host, consoles.c.expires <= cutoff)
            .order_by(consoles.c.expires)
            .limit(batch_size)
        )
        deleted = batches = 0
        while True:
            with self.engine.begin() as conn:
                rows = conn.execute(expired).all()
                if rows:
                    keys = [tuple(row)[:3] for row in rows]
                    deleted += conn.execute(consoles.delete().where(key.in_(keys))).rowcount
                    batches += 1
            on_batch([row.token_hash for row in rows if row.token_hash is not None])
            if len(rows) < batch_size:
                return PurgeResult(deleted, batches)
