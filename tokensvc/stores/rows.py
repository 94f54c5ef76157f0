"""Console rows <-> ConsoleConnection objects: the columns and the conversions."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, RowMapping

from tokensvc.db.models import Base
from tokensvc.objects.console import ConsoleConnection
from tokensvc.objects.lease import ConsoleLease
from tokensvc.stores.base import VALIDATE_EXCLUDES, ValidConsole

instances = Base.metadata.tables["instances"]
consoles = Base.metadata.tables["console_connections"]
invalidations = Base.metadata.tables["invalidations"]

# Columns a console object is read from (everything but bookkeeping).
CONSOLE_COLUMNS = (
    consoles.c.instance_uuid,
    consoles.c.host,
    consoles.c.port,
    consoles.c.token_hash,
    consoles.c.access_url,
    consoles.c.options,
    consoles.c.expires,
    consoles.c.console_type,
)


def console_from_row(row: RowMapping, lease: ConsoleLease | None = None) -> ConsoleConnection:
    values = dict(row)
    if values["console_type"] is None:
        del values["console_type"]
    return ConsoleConnection.obj_load(**values, connected=lease is not None, lease=lease)


def valid_console(connection: ConsoleConnection) -> ValidConsole:
    """What validate answers for a live console (without connected and lease: docs/api.md)."""
    primitive = connection.to_primitive(exclude=VALIDATE_EXCLUDES)
    encoded = json.dumps(primitive, separators=(",", ":")).encode()
    return ValidConsole(connection.console_type, encoded)


def same_port(instance_uuid: str, host: str, port: int) -> list[sa.ColumnElement[bool]]:
    return [
        consoles.c.instance_uuid == instance_uuid,
        consoles.c.host == host,
        consoles.c.port == port,
    ]


def row_values(
    connection: ConsoleConnection, compute_host: str, now: dt.datetime
) -> dict[str, Any]:
    """The console row's columns that a registration writes."""
    return {
        "token_hash": connection.token_hash,
        "access_url": connection.access_url,
        "options": connection.options,
        "expires": connection.expires,
        "console_type": connection.console_type,
        "compute_host": compute_host,
        "updated_at": now,
    }


# The register path's statements, built once: building a statement costs more
# Python than running a cached one. (k_ names: an UPDATE's SET uses the column names.)
_PORT = (
    consoles.c.instance_uuid == sa.bindparam("k_instance_uuid"),
    consoles.c.host == sa.bindparam("k_host"),
    consoles.c.port == sa.bindparam("k_port"),
)
PORT_TOKEN_FOR_UPDATE = sa.select(consoles.c.token_hash).where(*_PORT).with_for_update()
UPDATE_PORT = consoles.update().where(*_PORT)
LOCK_INSTANCE = (
    sa.select(instances.c.host, instances.c.created_at)
    .where(instances.c.uuid == sa.bindparam("uuid"))
    .with_for_update()
)
_INSERT_CONSOLE = consoles.insert()


def port_params(connection: ConsoleConnection) -> dict[str, Any]:
    """The parameters of PORT_TOKEN_FOR_UPDATE and UPDATE_PORT's key."""
    return {
        "k_instance_uuid": connection.instance_uuid,
        "k_host": connection.host,
        "k_port": connection.port,
    }


def insert_console(
    conn: Connection, connection: ConsoleConnection, compute_host: str, now: dt.datetime
) -> None:
    key = {"instance_uuid": connection.instance_uuid, "host": connection.host}
    row = row_values(connection, compute_host, now)
    conn.execute(_INSERT_CONSOLE, key | {"port": connection.port, "created_at": now} | row)
