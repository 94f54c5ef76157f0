"""The in-process side of the failed-attempts limiter: windows, addresses, bounded memory."""

from __future__ import annotations

import pytest

from tokensvc.errors import TooManyRequests
from tokensvc.ratelimit import AUTH, TOKEN, RateLimiter, client_of


class Clock:
    now = 1000.0  # the start of a 10 s window

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def limiter(clock: Clock, failed_auth_limit: int = 2) -> RateLimiter:
    return RateLimiter(
        window=10, failed_auth_limit=failed_auth_limit, invalid_token_limit=3, clock=clock
    )


def test_over_the_limit_until_the_window_ends_with_the_seconds_left(clock: Clock) -> None:
    limits = limiter(clock)
    limits.failed("192.0.2.1", AUTH)
    limits.check("192.0.2.1")
    clock.now += 2.5
    limits.failed("192.0.2.1", AUTH)
    with pytest.raises(TooManyRequests) as refused:
        limits.check("192.0.2.1")
    assert refused.value.retry_after == 8  # 7.5 s left, rounded up
    limits.check("192.0.2.2")
    clock.now += 7.5  # the next window
    limits.check("192.0.2.1")


def test_the_token_counter_is_checked_only_where_asked(clock: Clock) -> None:
    limits = limiter(clock)
    for _ in range(3):
        limits.failed("192.0.2.1", TOKEN)
    limits.check("192.0.2.1")  # other routes: only the key-check counter
    with pytest.raises(TooManyRequests):
        limits.check("192.0.2.1", token=True)


def test_zero_is_no_limit(clock: Clock) -> None:
    limits = limiter(clock, failed_auth_limit=0)
    for _ in range(100):
        limits.failed("192.0.2.1", AUTH)
    limits.check("192.0.2.1", token=True)


def test_ipv6_clients_count_per_64(clock: Clock) -> None:
    assert client_of("2001:db8:1:2:aaaa::1") == client_of("2001:db8:1:2:ffff::9")
    assert client_of("2001:db8:1:2::1") != client_of("2001:db8:1:3::1")
    assert client_of("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_of("192.0.2.1") == "192.0.2.1"
    limits = limiter(clock)
    limits.failed("2001:db8:1:2::1", AUTH)
    limits.failed("2001:db8:1:2::2", AUTH)
    with pytest.raises(TooManyRequests):
        limits.check("2001:db8:1:2::3")


def test_memory_is_bounded_oldest_failures_dropped_first(clock: Clock) -> None:
    limits = RateLimiter(
        window=10, failed_auth_limit=1, invalid_token_limit=1, max_addresses=3, clock=clock
    )
    for n in range(5):
        limits.failed(f"192.0.2.{n}", AUTH)
    assert len(limits._seen) == 3
    limits.check("192.0.2.0")  # forgotten
    with pytest.raises(TooManyRequests):
        limits.check("192.0.2.4")
