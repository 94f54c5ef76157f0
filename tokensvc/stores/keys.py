"""Every Redis key name of the service, in one place.

Keys are namespaced and hash-tagged on the token hash (``tokensvc:{<hash>}:...``)
so every key of one token lands in one Redis Cluster slot, which the fill
script needs.
"""

from __future__ import annotations

NAMESPACE = "tokensvc"


def console_key(token_hash: str) -> str:
    """The cache entry of one token: its console, a negative entry, or a tombstone."""
    return f"{NAMESPACE}:{{{token_hash}}}:console"
