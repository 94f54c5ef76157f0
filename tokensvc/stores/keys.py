"""Every Redis key name of the service, in one place.

Keys are namespaced and hash-tagged on the token hash (``tokensvc:{<hash>}:...``)
so every key of one token lands in one Redis Cluster slot, which the fill
script needs.
"""

from __future__ import annotations

import base64

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
