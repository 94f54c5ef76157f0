"""Token generation, hashing and the shape check."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from tokensvc import tokens


def test_tokens_are_256_bit_urlsafe_and_unique():
    issued = {tokens.generate_token() for _ in range(1000)}
    assert len(issued) == 1000
    assert all(tokens.is_well_formed(token) for token in issued)
    assert all(len(token) == 43 for token in issued)  # 32 bytes, unpadded base64


def test_hash_is_lowercase_sha256_of_the_ascii_text():
    token = tokens.generate_token()
    assert tokens.hash_token(token) == hashlib.sha256(token.encode("ascii")).hexdigest()
    assert tokens.is_token_hash(tokens.hash_token(token))


@given(st.one_of(st.text(max_size=60), st.binary(max_size=60), st.integers(), st.none()))
def test_shape_check_rejects_what_we_never_issue(value):
    issued_shape = (
        isinstance(value, str)
        and len(value) == 43
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)
    )
    assert tokens.is_well_formed(value) is issued_shape


def test_hashes_equal_is_exact():
    digest = tokens.hash_token(tokens.generate_token())
    assert tokens.hashes_equal(digest, digest)
    assert not tokens.hashes_equal(digest, digest[:-1] + ("0" if digest[-1] != "0" else "1"))
