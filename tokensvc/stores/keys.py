"""Every Redis key name of the service, in one place.

Keys are namespaced and hash-tagged on the token hash (``tokensvc:{<hash>}:...``)
so every key of one token lands in one Redis Cluster slot, which the fill
script needs.
"""

from __future__ import annotations

import base64
import hashlib

NAMESPACE = "tokensvc"


def console_key(token_hash: str) -> str:
    """The cache entry of one token: its console, a negative entry, or a tombstone.

    The hash is spelled in base64url (43 characters, not 64 hex digits): with one key
    per cached token, the key's length is a good part of Redis's memory per token.
    """
    digest = base64.urlsafe_b64encode(bytes.fromhex(token_hash)).rstrip(b"=").decode()
    return f"{NAMESPACE}:{{{digest}}}:c"


def purge_lock_key(compute_host: str, cycle: int) -> str:
    """Held while one purge of a compute host is queued for one cycle (the queue Redis)."""
    return f"{NAMESPACE}:purge-lock:{cycle}:{compute_host}"


def memcached_key(token_hash: str) -> str:
    """A token's entry in the deprecated memcached backend."""
    return f"{NAMESPACE}:console:{token_hash}"


def close_channel(proxy_id: str) -> str:
    """The pub/sub channel that wakes a proxy's close feed (the id hashed: bounded, opaque)."""
    digest = hashlib.sha256(proxy_id.encode("utf-8", "surrogatepass")).digest()[:16]
    return f"{NAMESPACE}:closes:{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


def close_channel_pattern() -> str:
    """Every proxy's close channel: one PSUBSCRIBE per API process."""
    return f"{NAMESPACE}:closes:*"


def failed_attempts_key(counter: str, window: int, address: str) -> str:
    """One client address's count of failed attempts (``auth`` or ``token``) in one window.

    The address is hashed: a key's length stays bounded whatever the server puts in
    ``REMOTE_ADDR``, and the cache Redis holds no client addresses.
    """
    digest = hashlib.blake2b(address.encode("utf-8", "surrogatepass"), digest_size=12).digest()
    encoded = base64.urlsafe_b64encode(digest).decode()
    return f"{NAMESPACE}:failed:{counter}:{window}:{encoded}"
