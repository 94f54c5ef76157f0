"""Console tokens: generation, hashing and the cheap shape check.

A token is ``secrets.token_urlsafe(32)``: 256 random bits as 43 URL-safe
base64 characters. Only its SHA-256 (lowercase hex of the ASCII text, unkeyed)
is ever stored, so a database dump yields no usable token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

TOKEN_BYTES = 32
TOKEN_LENGTH = 43  # len(token_urlsafe(32)): 32 bytes of base64 without padding
_TOKEN_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}")
_HASH_SHAPE = re.compile(r"[0-9a-f]{64}")


def generate_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def is_well_formed(token: object) -> bool:
    """True when ``token`` could be one we issued; checked before any I/O."""
    return isinstance(token, str) and _TOKEN_SHAPE.fullmatch(token) is not None


def is_token_hash(value: object) -> bool:
    return isinstance(value, str) and _HASH_SHAPE.fullmatch(value) is not None


def hashes_equal(left: str, right: str) -> bool:
    """Constant-time comparison of two secrets or digests."""
    return hmac.compare_digest(left.encode("ascii"), right.encode("ascii"))
