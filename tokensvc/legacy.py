"""Switching from the memcached backend to the database without stranding users.

With LEGACY_MEMCACHED_READ on, a token the database does not know is looked up
in memcached and, if found there, imported into the database with the same
hash and expiry, so users connected before the switch can reconnect.

memcached has no authentication: anyone who reaches it can write entries. So an
entry is imported only if it is exactly what the memcached backend writes (a
complete ConsoleConnection primitive of a known version, for the hash it is
stored under) and its expiry is set, still ahead and no further than
MAX_TOKEN_TTL away; anything else is an invalid token.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

from tokensvc.errors import NotAcceptable, ValidationFailed
from tokensvc.objects.console import ConsoleConnection, utcnow
from tokensvc.services import Services
from tokensvc.stores.base import VALIDATE_EXCLUDES, ValidConsole
from tokensvc.stores.rows import valid_console

log = logging.getLogger(__name__)

# What the memcached backend always writes: every field a console row stores but the hash.
_WRITTEN_FIELDS = tuple(name for name in ConsoleConnection.fields if name not in VALIDATE_EXCLUDES)


class MalformedEntry(Exception):
    """A memcached entry not to import; the message is a fixed reason, safe to log."""


def import_legacy_token(services: Services, token_hash: str) -> ValidConsole | None:
    """The console of a token only memcached still holds, now in the database too."""
    if services.legacy is None:
        return None
    entry = services.legacy.get(token_hash)
    if entry is None:
        return None
    try:
        connection = _connection_of(entry, token_hash)
        _check_expiry(connection.expires, services.settings.max_token_ttl)
    except MalformedEntry as refused:
        # Neither the token nor its hash: the log says why, not which.
        log.warning("refused a memcached entry for import: %s", refused)
        return None
    connection.obj_set({"token_hash": token_hash, "connected": False, "lease": None})
    started = time.monotonic()
    if not services.database.import_console(connection):
        log.warning(
            "refused a memcached entry for import: instance %s unknown or its port re-registered",
            connection.instance_uuid,
        )
        return None
    if services.cached is not None:
        services.cached.warm(connection, started)
    services.metrics.legacy_imports.inc()
    log.info("imported a console token from memcached (instance %s)", connection.instance_uuid)
    return valid_console(connection)


def _connection_of(entry: ValidConsole, token_hash: str) -> ConsoleConnection:
    """The console a memcached entry describes, if it is one the backend could have written."""
    try:
        primitive = json.loads(entry.connection_json)  # an object: the envelope is ours
        # A lone surrogate ("\ud800") is not text: no column and no answer can hold it.
        json.dumps(primitive, ensure_ascii=False).encode()
        if primitive.get("version") not in ConsoleConnection.VERSIONS:
            raise MalformedEntry("not a ConsoleConnection version this service knows")
        connection = ConsoleConnection.from_primitive(primitive)
        connection.obj_require(_WRITTEN_FIELDS)
    except (ValueError, RecursionError, ValidationFailed, NotAcceptable):
        raise MalformedEntry("not a well-formed ConsoleConnection primitive") from None
    if connection.obj_attr_is_set("token_hash") and connection.token_hash != token_hash:
        raise MalformedEntry("it names another token hash than the key it is stored under")
    if connection.console_type != entry.console_type:
        raise MalformedEntry("its console type line and its primitive disagree")
    return connection


def _check_expiry(expires: dt.datetime | None, max_token_ttl: int) -> None:
    now = utcnow()
    if expires is None:
        raise MalformedEntry("it has no expiry")
    if expires <= now:
        raise MalformedEntry("it has expired")
    if expires > now + dt.timedelta(seconds=max_token_ttl):
        raise MalformedEntry("its expiry is further away than MAX_TOKEN_TTL")
