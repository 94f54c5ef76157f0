"""Switching from the memcached backend to the database without stranding users.

With LEGACY_MEMCACHED_READ on, a token the database does not know is looked up
in memcached and, if found there, imported into the database with the same
hash and expiry, so users connected before the switch can reconnect.

memcached has no authentication: anyone who reaches it can write entries. So an
entry is imported only if it is exactly what the memcached backend writes (a
complete ConsoleConnection primitive of a known version, for the hash it is
stored under) and its expiry is set, still ahead and no further than
MAX_TOKEN_TTL away; anything else is an invalid token.

:class:`LegacyReadStore` wraps the database backend's store (the cached one, or the
database store itself) the way the cached store wraps the database store: the API
never knows whether a console it validated was imported on the way.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence

from tokensvc.errors import BackendUnavailable, NotAcceptable, ValidationFailed
from tokensvc.objects.console import Authorize, ConsoleConnection, utcnow
from tokensvc.objects.instance import Instance
from tokensvc.stores.base import (
    BACKEND_CAPABILITIES,
    VALIDATE_EXCLUDES,
    InstanceWrite,
    PurgeResult,
    ValidConsole,
)
from tokensvc.stores.cached import CachedStore
from tokensvc.stores.database import DatabaseStore
from tokensvc.stores.memcached import MemcachedEntries
from tokensvc.stores.rows import valid_console

log = logging.getLogger(__name__)

# What the memcached backend always writes: every field a console row stores but the hash.
_WRITTEN_FIELDS = tuple(name for name in ConsoleConnection.fields if name not in VALIDATE_EXCLUDES)


class MalformedEntry(Exception):
    """A memcached entry not to import; the message is a fixed reason, safe to log."""


class LegacyReadStore:
    """:class:`~tokensvc.stores.base.ConsoleRecords` whose lookup falls back to memcached.

    A token the wrapped store does not know is looked up in memcached and, if the
    entry passes the checks above, imported through the wrapped store (which also
    warms its cache); every other method is the wrapped store's.
    """

    capabilities = BACKEND_CAPABILITIES["database"]

    def __init__(
        self,
        store: CachedStore | DatabaseStore,
        entries: MemcachedEntries,
        *,
        max_token_ttl: int,
        imported: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.entries = entries
        self.max_token_ttl = max_token_ttl
        self.imported = imported  # told of each import (the app's metrics)

    def lookup(self, token_hash: str) -> ValidConsole | None:
        return self.store.lookup(token_hash) or self._import(token_hash)

    def _entry(self, token_hash: str) -> ConsoleConnection | None:
        """The console of a well-formed memcached entry (the checks above), else None."""
        entry = self.entries.get(token_hash)
        if entry is None:
            return None
        try:
            connection = _connection_of(entry, token_hash)
            _check_expiry(connection.expires, self.max_token_ttl)
        except MalformedEntry as refused:
            # Neither the token nor its hash: the log says why, not which.
            log.warning("refused a memcached entry for import: %s", refused)
            return None
        connection.obj_set({"token_hash": token_hash, "connected": False, "lease": None})
        return connection

    def _import(self, token_hash: str) -> ValidConsole | None:
        """The console of a token only memcached still holds, now in the database too."""
        connection = self._entry(token_hash)
        if connection is None:
            return None
        if not self.store.import_console(connection):
            log.warning(
                "refused a memcached entry for import: "
                "instance %s unknown or its port re-registered",
                connection.instance_uuid,
            )
            return None
        self.imported()
        log.info("imported a console token from memcached (instance %s)", connection.instance_uuid)
        return valid_console(connection)

    def _forget(self, token_hashes: Sequence[str]) -> None:
        """Revoked in the database: gone from memcached too, or the next lookup (which
        finds no row) would import the entry again (and memcached-mode processes still
        running side by side would go on validating it)."""
        try:
            self.entries.forget(token_hashes)
        except BackendUnavailable:
            log.warning(
                "could not remove %d revoked token(s) from memcached: they may be imported "
                "again until they expire (docs/upgrade-memcached.md)",
                len(token_hashes),
            )

    # -- the wrapped store's, revocations also forgotten in memcached --------------------
    def put_instance(self, instance: Instance) -> InstanceWrite:
        written = self.store.put_instance(instance)
        self._forget(written.revoked)
        return written

    def get_instance(self, uuid: str) -> Instance:
        return self.store.get_instance(uuid)

    def delete_instance(self, uuid: str) -> list[str]:
        revoked = self.store.delete_instance(uuid)
        self._forget(revoked)
        return revoked

    def save_console(
        self,
        connection: ConsoleConnection,
        *,
        ports: Sequence[int] = (),
        force: bool = False,
        authorize: Authorize | None = None,
    ) -> str | None:
        replaced = self.store.save_console(
            connection, ports=ports, force=force, authorize=authorize
        )
        if replaced is not None:
            self._forget([replaced])
        return replaced

    def get_by_token_hash(self, token_hash: str) -> ConsoleConnection | None:
        # A token only memcached holds is found too (not imported), so it can be revoked.
        return self.store.get_by_token_hash(token_hash) or self._entry(token_hash)

    def revoke_token(self, token_hash: str) -> bool:
        if self.store.revoke_token(token_hash):
            self._forget([token_hash])
            return True
        # Not in the database: perhaps a token only memcached holds (never imported). If
        # memcached cannot say, the revoke is a 503 to retry, not a 404.
        held = self._entry(token_hash) is not None
        if held:
            self._forget([token_hash])
        return held

    def revoke_all(self, instance_uuid: str) -> list[str]:
        revoked = self.store.revoke_all(instance_uuid)
        self._forget(revoked)
        return revoked

    def list_by_instance(self, instance_uuid: str) -> list[ConsoleConnection]:
        return self.store.list_by_instance(instance_uuid)

    def purge_expired(
        self,
        compute_host: str,
        batch_size: int,
        on_batch: Callable[[list[str]], None] = lambda hashes: None,
    ) -> PurgeResult:
        return self.store.purge_expired(compute_host, batch_size, on_batch)


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
