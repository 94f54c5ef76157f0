"""The in-process key check cache: TTL, stale answers, and no timeout per request."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.exc import OperationalError

from tokensvc.auth import KeyAuthenticator, bearer_key, generate_key, hash_key
from tokensvc.errors import BackendUnavailable, Unauthorized
from tokensvc.service_key import ServiceKey

KEY = "tsk_" + "k" * 43  # fixed, so test ids match across xdist workers
FOUND = ServiceKey(
    "a" * 32, "proxy", None, None, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), None, None
)


class FlakyKeys:
    """Stands in for the key table's reads (the SQL itself is tested on MariaDB)."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0
        self.answer: ServiceKey | None = FOUND

    def find(self, key_hash: str) -> ServiceKey | None:
        self.calls += key_hash == hash_key(KEY)  # (any other key is unknown)
        if self.down:
            raise OperationalError("SELECT", {}, Exception("gone"))
        return self.answer if key_hash == hash_key(KEY) else None


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup():
    keys, clock = FlakyKeys(), Clock()
    auth = KeyAuthenticator(keys, ttl=5, stale=300, retry_after=2, clock=clock)  # type: ignore[arg-type]
    return auth, keys, clock


def test_answers_are_cached_for_the_ttl(setup):
    auth, keys, clock = setup
    assert auth.authenticate(KEY) is FOUND
    clock.now += 4.9
    auth.authenticate(KEY)
    assert keys.calls == 1
    keys.answer = None  # revoked
    clock.now += 0.2
    with pytest.raises(Unauthorized):
        auth.authenticate(KEY)


def test_database_down_serves_stale_answers_and_backs_off(setup):
    auth, keys, clock = setup
    auth.authenticate(KEY)
    keys.down = True
    clock.now += 10
    assert auth.authenticate(KEY) is FOUND  # stale, after one failed lookup
    for _ in range(5):
        assert auth.authenticate(KEY) is FOUND
    assert keys.calls == 2  # not one timeout per request
    clock.now += 2.1
    auth.authenticate(KEY)
    assert keys.calls == 3  # tries the database again after retry_after
    clock.now += 300
    with pytest.raises(BackendUnavailable):
        auth.authenticate(KEY)


def test_unknown_key_while_database_down_is_503(setup):
    auth, keys, _ = setup
    keys.down = True
    with pytest.raises(BackendUnavailable):
        auth.authenticate(KEY)


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Basic " + KEY, "Bearer tsk_short", "Bearer " + KEY + "x"]
)
def test_malformed_bearer_is_401_before_any_lookup(header):
    with pytest.raises(Unauthorized):
        bearer_key(header)


def test_bearer_key_is_read():
    assert bearer_key(f"Bearer {KEY}") == KEY
    assert bearer_key(f"bearer {KEY}") == KEY


def test_a_flood_of_unknown_keys_never_evicts_a_known_one(setup):
    auth, keys, clock = setup
    auth.authenticate(KEY)
    for _ in range(auth.max_entries + 100):
        with pytest.raises(Unauthorized):
            auth.authenticate(generate_key())
    clock.now += 1
    assert auth.authenticate(KEY) is FOUND
    assert keys.calls == 1  # still cached
    keys.down = True
    clock.now += 10  # past the TTL: only the stale answer is left
    assert auth.authenticate(KEY) is FOUND


def test_unknown_keys_are_cached_and_bounded(setup):
    auth, keys, _ = setup
    unknown = generate_key()
    with pytest.raises(Unauthorized):
        auth.authenticate(unknown)
    keys.down = True  # a cached negative answer needs no lookup
    with pytest.raises(Unauthorized):
        auth.authenticate(unknown)
    keys.down = False
    for _ in range(auth.max_entries + 10):
        with pytest.raises(Unauthorized):
            auth.authenticate(generate_key())
    assert len(auth._unknown) == auth.max_entries


def test_a_key_found_after_it_was_unknown_is_not_answered_twice(setup):
    auth, keys, clock = setup
    keys.answer = None
    with pytest.raises(Unauthorized):
        auth.authenticate(KEY)
    keys.answer = FOUND  # created since
    clock.now += 5.1
    assert auth.authenticate(KEY) is FOUND
    assert hash_key(KEY) not in auth._unknown
