"""The deprecated memcached backend (kept for one release; docs/storage-and-cache.md).

Token entries live in memcached, keyed by token hash, with the token's TTL;
memcached may evict them before they expire, which is why this mode is
deprecated. Instances, service keys and the per-instance index of token hashes
(the console rows) stay in the database, so revoke-all and instance delete stay
correct even after an eviction. Not compatible with Nova's consoleauth entries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from pymemcache.client.hash import HashClient  # type: ignore[import-untyped]
from pymemcache.exceptions import MemcacheError  # type: ignore[import-untyped]

from tokensvc.errors import BackendUnavailable
from tokensvc.objects.console import Authorize, ConsoleConnection, utcnow
from tokensvc.objects.instance import Instance
from tokensvc.stores import keys
from tokensvc.stores.base import (
    BACKEND_CAPABILITIES,
    Capability,
    InstanceWrite,
    ValidConsole,
    require_capability,
)
from tokensvc.stores.database import DatabaseStore
from tokensvc.stores.entries import decode_entry, encode_entry
from tokensvc.stores.rows import valid_console

log = logging.getLogger(__name__)


def make_client(servers: Sequence[tuple[str, int]], timeout: float) -> HashClient:
    """Several servers through pymemcache's consistent hashing; fail fast, no retries.

    Pooled: the server's request threads share this client, and one socket used by two
    threads at once mixes their answers.
    """
    return HashClient(
        list(servers),
        use_pooling=True,
        max_pool_size=32,
        connect_timeout=timeout,
        timeout=timeout,
        retry_attempts=0,
        dead_timeout=1,
        ignore_exc=False,
    )


@contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except (TimeoutError, MemcacheError, OSError) as exc:
        raise BackendUnavailable(f"memcached unavailable ({type(exc).__name__})") from None


class MemcachedEntries:
    """Token entries in memcached (also read by the database backend's legacy read)."""

    def __init__(self, client: HashClient) -> None:
        self.client = client

    def get(self, token_hash: str) -> ValidConsole | None:
        """The entry under ``token_hash``; None if there is none or it is not an entry.

        memcached has no authentication, so what is found may be anything.
        """
        with _reachable():
            value = self.client.get(keys.memcached_key(token_hash))
        if value is None:
            return None
        try:
            return decode_entry(value)
        except ValueError:  # too few lines, or a type line that is not UTF-8
            log.warning("ignored a memcached value that is not a console entry")
            return None

    def put(self, connection: ConsoleConnection) -> None:
        assert connection.token_hash is not None
        ttl = 0 if connection.expires is None else (connection.expires - utcnow()).total_seconds()
        with _reachable():
            self.client.set(
                keys.memcached_key(connection.token_hash),
                encode_entry(valid_console(connection)),
                expire=max(1, int(ttl)),
                noreply=False,
            )

    def forget(self, token_hashes: Sequence[str]) -> None:
        if token_hashes:
            with _reachable():
                self.client.delete_many([keys.memcached_key(h) for h in token_hashes])


class MemcachedStore:
    """:class:`~tokensvc.stores.base.TokenStore` for CONSOLE_TOKENS_BACKEND=memcached.

    No :class:`~tokensvc.stores.base.Capability`: not ConsoleRecords (no listing, no
    purge), no leases, no port choice.
    """

    capabilities = BACKEND_CAPABILITIES["memcached"]

    def __init__(self, database: DatabaseStore, entries: MemcachedEntries) -> None:
        self.database = database
        self.entries = entries

    def lookup(self, token_hash: str) -> ValidConsole | None:
        return self.entries.get(token_hash)  # evicted means invalid: the deprecated behaviour

    def save_console(
        self,
        connection: ConsoleConnection,
        *,
        ports: Sequence[int] = (),
        force: bool = False,
        authorize: Authorize | None = None,
    ) -> str | None:
        if ports or force:
            require_capability(self.capabilities, Capability.PORT_CHOICE)
        replaced = self.database.save_console(connection, authorize=authorize)
        try:
            self.entries.put(connection)
        except BackendUnavailable:
            assert connection.token_hash is not None
            self.database.revoke_token(connection.token_hash)  # no token without its entry
            raise
        self.entries.forget([replaced] if replaced else [])
        return replaced

    def revoke_token(self, token_hash: str) -> bool:
        self.entries.forget([token_hash])
        return self.database.revoke_token(token_hash)

    def revoke_all(self, instance_uuid: str) -> list[str]:
        revoked = self.database.revoke_all(instance_uuid)
        self.entries.forget(revoked)
        return revoked

    def put_instance(self, instance: Instance) -> InstanceWrite:
        written = self.database.put_instance(instance)
        self.entries.forget(written.revoked)
        return written

    def delete_instance(self, uuid: str) -> list[str]:
        revoked = self.database.delete_instance(uuid)
        self.entries.forget(revoked)
        return revoked

    def get_instance(self, uuid: str) -> Instance:
        return self.database.get_instance(uuid)

    def get_by_token_hash(self, token_hash: str) -> ConsoleConnection | None:
        return self.database.get_by_token_hash(token_hash)  # the index row
