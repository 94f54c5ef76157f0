"""Console leases: who holds which console port, across processes and machines.

The lease row's primary key (instance, host, port) decides: taking a port is
one conditional UPDATE (a lapsed lease is taken over) or one INSERT that the
key refuses when someone holds it. No Python lock is involved, so any number
of API processes on any number of machines agree.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Collection, Iterator
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from tokensvc.db.models import Base
from tokensvc.objects.console import utcnow
from tokensvc.objects.lease import ConsoleLease

leases = Base.metadata.tables["console_leases"]
consoles = Base.metadata.tables["console_connections"]
instances = Base.metadata.tables["instances"]

_LEASE_COLUMNS = (
    leases.c.id,
    leases.c.proxy_id,
    leases.c.client,
    leases.c.since,
    leases.c.expires,
    leases.c.close_reason,
)
_KEY_COLUMNS = (leases.c.instance_uuid, leases.c.host, leases.c.port)


class ConsoleKey(NamedTuple):
    instance_uuid: str
    host: str
    port: int


class LeaseRecord(NamedTuple):
    lease: ConsoleLease
    console: ConsoleKey


def lease_from_row(row: RowMapping) -> ConsoleLease:
    return ConsoleLease.obj_load(**{c.name: row[c.name] for c in _LEASE_COLUMNS})


def _record(row: RowMapping) -> LeaseRecord:
    return LeaseRecord(lease_from_row(row), ConsoleKey(*(row[c.name] for c in _KEY_COLUMNS)))


def _at(console: ConsoleKey) -> list[sa.ColumnElement[bool]]:
    return [column == value for column, value in zip(_KEY_COLUMNS, console, strict=True)]


# -- used inside the token store's transactions ----------------------------------------------
_OPEN_LEASES = (
    leases.c.instance_uuid == sa.bindparam("k_instance_uuid"),
    leases.c.close_reason.is_(None),
)
_CLOSE_ALL = leases.update().where(*_OPEN_LEASES)
_CLOSE_AT = leases.update().where(
    *_OPEN_LEASES, leases.c.host == sa.bindparam("k_host"), leases.c.port == sa.bindparam("k_port")
)


# Told the proxy ids whose leases got a close reason, after the commit (the close feed).
NotifyCloses = Callable[[Collection[str]], None]
# Where close_leases collects those proxy ids inside a closing_transaction.
_CLOSED_PROXIES = "tokensvc.closed_proxies"


def close_leases(
    conn: Connection, reason: str, instance_uuid: str, at: tuple[str, int] | None = None
) -> None:
    """Ask the proxies to close the sessions on these consoles (close feed, next heartbeat)."""
    params = {"k_instance_uuid": instance_uuid, "close_reason": reason}
    where = [leases.c.instance_uuid == instance_uuid, leases.c.close_reason.is_not(None)]
    if at is None:
        conn.execute(_CLOSE_ALL, params)
    else:
        conn.execute(_CLOSE_AT, params | {"k_host": at[0], "k_port": at[1]})
        where += [leases.c.host == at[0], leases.c.port == at[1]]
    closed: set[str] | None = conn.info.get(_CLOSED_PROXIES)
    if closed is not None:
        closed.update(conn.execute(sa.select(leases.c.proxy_id).where(*where)).scalars())


@contextlib.contextmanager
def closing_transaction(engine: Engine, notify: NotifyCloses | None) -> Iterator[Connection]:
    """``engine.begin()`` that tells ``notify`` whose leases it closed, once committed.

    After the commit, so a woken close feed reads the close reason; never on a rollback.
    """
    closed: set[str] = set()
    with engine.begin() as conn:
        if notify is not None:
            conn.info[_CLOSED_PROXIES] = closed
        try:
            yield conn
        finally:
            # The info dict outlives this checkout (it belongs to the DBAPI connection).
            conn.info.pop(_CLOSED_PROXIES, None)
    if closed and notify is not None:
        notify(closed)


_LIVE_LEASES = sa.select(*_LEASE_COLUMNS, leases.c.host, leases.c.port).where(
    leases.c.instance_uuid == sa.bindparam("instance_uuid"), leases.c.expires > sa.bindparam("now")
)


def live_leases(conn: Connection, instance_uuid: str) -> dict[tuple[str, int], ConsoleLease]:
    """The unlapsed leases of an instance, by (host, port)."""
    params = {"instance_uuid": instance_uuid, "now": utcnow()}
    rows = conn.execute(_LIVE_LEASES, params).mappings()
    return {(row["host"], row["port"]): lease_from_row(row) for row in rows}


class LeaseStore:
    def __init__(
        self, engine: Engine, *, lease_ttl: int, notify: NotifyCloses | None = None
    ) -> None:
        self.engine = engine
        self.lease_ttl = dt.timedelta(seconds=lease_ttl)
        self.notify = notify

    def acquire(
        self, console: ConsoleKey, proxy_id: str, client: str | None
    ) -> ConsoleLease | None:
        """A new lease on the port, or None when a live lease holds it."""
        now = utcnow()
        values: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "proxy_id": proxy_id,
            "client": client,
            "since": now,
            "expires": now + self.lease_ttl,
            "close_reason": None,
        }
        with self.engine.begin() as conn:
            lapsed = leases.update().where(*_at(console), leases.c.expires <= now)
            taken = conn.execute(lapsed.values(**values)).rowcount == 1
        if not taken:
            try:
                with self.engine.begin() as conn:
                    conn.execute(leases.insert().values(**console._asdict(), **values))
            except IntegrityError:
                return None
        return ConsoleLease(**values)

    def find(self, lease_id: str) -> LeaseRecord | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(*_LEASE_COLUMNS, *_KEY_COLUMNS).where(leases.c.id == lease_id)
                )
                .mappings()
                .first()
            )
        return None if row is None else _record(row)

    def release(self, lease_id: str, proxy_id: str | None = None) -> LeaseRecord | None:
        """Delete the lease (of that proxy, if given); None if unknown or superseded."""
        found = self.find(lease_id)
        if found is None or (proxy_id is not None and found.lease.proxy_id != proxy_id):
            return None
        with self.engine.begin() as conn:
            deleted = conn.execute(leases.delete().where(leases.c.id == lease_id)).rowcount
        return found if deleted else None

    def force_close(self, lease_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                leases.update()
                .where(leases.c.id == lease_id, leases.c.close_reason.is_(None))
                .values(close_reason="forced")
            )
            # (MariaDB has no UPDATE ... RETURNING.)
            mine = sa.select(leases.c.proxy_id).where(leases.c.id == lease_id)
            proxy_ids = list(conn.execute(mine).scalars()) if result.rowcount == 1 else []
        if proxy_ids and self.notify is not None:
            self.notify(proxy_ids)
        return bool(proxy_ids)

    def closing(self, proxy_id: str, *, enforce_expiry: bool) -> list[tuple[str, str]]:
        """(lease id, reason) of the proxy's live leases it must close; reads only.

        With ``enforce_expiry``, a lease whose token expired counts as ``expired`` before
        a heartbeat has marked it so (the feed polls: no write per poll).
        """
        reason: sa.ColumnElement[Any] = leases.c.close_reason
        condition: sa.ColumnElement[bool] = leases.c.close_reason.is_not(None)
        now = utcnow()
        if enforce_expiry:
            reason = sa.func.coalesce(leases.c.close_reason, "expired")
            condition = sa.or_(condition, ~_console_is_live(now))
        query = sa.select(leases.c.id, reason).where(
            leases.c.proxy_id == proxy_id, leases.c.expires > now, condition
        )
        with self.engine.connect() as conn:
            return [(row[0], row[1]) for row in conn.execute(query.order_by(leases.c.id))]

    def heartbeat(self, proxy_id: str, *, enforce_expiry: bool) -> tuple[int, list[LeaseRecord]]:
        """Renew every lease of the proxy; the ones it must close, with their reasons."""
        now = utcnow()
        mine = leases.c.proxy_id == proxy_id
        with self.engine.begin() as conn:
            if enforce_expiry:
                conn.execute(
                    leases.update()
                    .where(mine, leases.c.close_reason.is_(None), ~_console_is_live(now))
                    .values(close_reason="expired")
                )
            renewed = conn.execute(
                leases.update().where(mine).values(expires=now + self.lease_ttl)
            ).rowcount
            closing = conn.execute(
                sa.select(*_LEASE_COLUMNS, *_KEY_COLUMNS).where(
                    mine, leases.c.close_reason.is_not(None)
                )
            ).mappings()
            return renewed, [_record(row) for row in closing]

    def reap(self) -> int:
        """Delete lapsed leases; how many."""
        with self.engine.begin() as conn:
            return conn.execute(leases.delete().where(leases.c.expires <= utcnow())).rowcount

    def release_proxy(self, proxy_id: str) -> int:
        with self.engine.begin() as conn:
            return conn.execute(leases.delete().where(leases.c.proxy_id == proxy_id)).rowcount

    def list(
        self, proxy_id: str | None = None, compute_host: str | None = None
    ) -> list[LeaseRecord]:
        query = sa.select(*_LEASE_COLUMNS, *_KEY_COLUMNS).where(leases.c.expires > utcnow())
        if proxy_id is not None:
            query = query.where(leases.c.proxy_id == proxy_id)
        if compute_host is not None:
            on_host = sa.select(instances.c.uuid).where(instances.c.host == compute_host)
            query = query.where(leases.c.instance_uuid.in_(on_host))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(leases.c.since)).mappings()
            return [_record(row) for row in rows]


def _console_is_live(now: dt.datetime) -> sa.ColumnElement[bool]:
    """The lease's console still exists with an unexpired token."""
    return sa.exists().where(
        consoles.c.instance_uuid == leases.c.instance_uuid,
        consoles.c.host == leases.c.host,
        consoles.c.port == leases.c.port,
        sa.or_(consoles.c.expires.is_(None), consoles.c.expires > now),
    )
