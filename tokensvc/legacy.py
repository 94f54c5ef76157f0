"""Switching from the memcached backend to the database without stranding users.

With LEGACY_MEMCACHED_READ on, a token the database does not know is looked up
in memcached and, if found there, imported into the database with the same
hash and expiry, so users connected before the switch can reconnect.
"""

from __future__ import annotations

import json
import logging
import time

from tokensvc.objects.console import ConsoleConnection
from tokensvc.services import Services
from tokensvc.stores.base import ValidConsole
from tokensvc.stores.rows import valid_console

log = logging.getLogger(__name__)


def import_legacy_token(services: Services, token_hash: str) -> ValidConsole | None:
    """The console of a token only memcached still holds, now in the database too."""
    if services.legacy is None:
        return None
    entry = services.legacy.get(token_hash)
    if entry is None:
        return None
    connection = ConsoleConnection.from_primitive(json.loads(entry.connection_json))
    connection.obj_set({"token_hash": token_hash, "connected": False, "lease": None})
    started = time.monotonic()
    if connection.is_expired() or not services.database.import_console(connection):
        return None
    if services.cached is not None:
        services.cached.warm(connection, started)
    services.metrics.legacy_imports.inc()
    log.info("imported a console token from memcached (instance %s)", connection.instance_uuid)
    return valid_console(connection)
