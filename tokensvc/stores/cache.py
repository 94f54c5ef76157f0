"""The cache tier's Redis operations: the plain GET of the hot path and the guarded writes.

One key per token hash (see :mod:`tokensvc.stores.keys`) holds either a
console entry, a short negative entry, or a tombstone left by a revocation.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tokensvc.stores import keys
from tokensvc.stores.entries import NEGATIVE, TOMBSTONE

# Refuses to overwrite a tombstone, and refuses a value whose database read or
# write started more than a tombstone lifetime ago, since its tombstone may
# already have expired. (The age is measured by the caller's monotonic clock
# right before sending: no clock is compared across hosts, and no TIME round trip.)
_FILL = """
if tonumber(ARGV[3]) > tonumber(ARGV[5]) then return 0 end
if redis.call('GET', KEYS[1]) == ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


def make_client(url: str, timeout: float) -> redis.Redis:
    """A client that fails fast: short timeouts and no retries (the breaker decides)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )


class RedisCache:
    def __init__(self, client: redis.Redis, *, negative_ttl: int, tombstone_ttl: int) -> None:
        self.client = client
        self.negative_ttl = negative_ttl
        self.tombstone_ttl_ms = tombstone_ttl * 1000
        self._fill = client.register_script(_FILL)

    def get(self, token_hash: str) -> bytes | None:
        value = self.client.get(keys.console_key(token_hash))
        assert value is None or isinstance(value, bytes)  # decode_responses is off
        return value

    def fill(self, token_hash: str, value: bytes, ttl_ms: int, age_ms: int) -> bool:
        """Write an entry whose database read (or write) started ``age_ms`` ago."""
        args: list[bytes | int] = [value, ttl_ms, age_ms, TOMBSTONE, self.tombstone_ttl_ms]
        return bool(self._fill(keys=[keys.console_key(token_hash)], args=args))

    def set_negative(self, token_hash: str) -> None:
        # NX: never over a fresher console entry or a tombstone.
        self.client.set(keys.console_key(token_hash), NEGATIVE, ex=self.negative_ttl, nx=True)

    def tombstone(self, token_hashes: Sequence[str]) -> None:
        pipeline = self.client.pipeline(transaction=False)
        for token_hash in token_hashes:
            pipeline.set(keys.console_key(token_hash), TOMBSTONE, px=self.tombstone_ttl_ms)
        pipeline.execute()

    def forget(self, token_hashes: Sequence[str]) -> None:
        # One DEL per key: keys of different tokens live in different cluster slots.
        pipeline = self.client.pipeline(transaction=False)
        for token_hash in token_hashes:
            pipeline.delete(keys.console_key(token_hash))
        pipeline.execute()

    def ping(self) -> None:
        self.client.ping()
