"""The cache's circuit breaker, on a fake clock: closed, open, half-open probe, closed again."""

from __future__ import annotations

import threading

import pytest

from tokensvc.stores.breaker import CircuitBreaker

RESET = 2.0
WAIT = 5.0  # bound on every cross-thread wait; never reached when the breaker is right


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recover:
    """A probe that counts its calls, and fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False

    def __call__(self) -> None:
        self.calls += 1
        if self.failing:
            raise ConnectionError("still down")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def recover() -> Recover:
    return Recover()


@pytest.fixture
def breaker(clock: FakeClock, recover: Recover) -> CircuitBreaker:
    return CircuitBreaker(RESET, recover, clock=clock)


def test_closed_breaker_lets_every_call_through_without_probing(breaker, clock, recover):
    for _ in range(5):
        assert breaker.available() is True
        clock.advance(RESET * 10)
    assert breaker.is_open is False
    assert recover.calls == 0


def test_trip_opens_it_until_reset_after_has_passed(breaker, clock, recover):
    breaker.trip()
    assert breaker.is_open is True
    assert breaker.available() is False
    clock.advance(RESET - 0.25)
    assert breaker.available() is False
    assert recover.calls == 0  # no probe before reset_after
    clock.advance(0.25)  # exactly reset_after since the trip
    assert breaker.available() is True
    assert recover.calls == 1
    assert breaker.is_open is False


def test_a_new_trip_restarts_the_wait(breaker, clock, recover):
    breaker.trip()
    clock.advance(RESET - 0.5)
    breaker.trip()  # another failure while open
    clock.advance(1.0)  # past the first trip's reset, not the second's
    assert breaker.available() is False
    assert recover.calls == 0
    clock.advance(RESET)
    assert breaker.available() is True


def test_failed_probe_keeps_it_open_and_restarts_the_wait(breaker, clock, recover):
    breaker.trip()
    recover.failing = True
    clock.advance(RESET)
    assert breaker.available() is False  # the probe ran and failed
    assert recover.calls == 1
    assert breaker.is_open is True
    # The wait counts from the failed probe, not from the trip.
    clock.advance(RESET - 0.25)
    assert breaker.available() is False
    assert recover.calls == 1
    clock.advance(0.25)
    assert breaker.available() is False  # second probe, still failing
    assert recover.calls == 2
    recover.failing = False
    clock.advance(RESET)
    assert breaker.available() is True
    assert recover.calls == 3
    assert breaker.is_open is False


def test_successful_probe_closes_it_for_good(breaker, clock, recover):
    breaker.trip()
    clock.advance(RESET)
    assert breaker.available() is True
    for _ in range(5):
        clock.advance(RESET)
        assert breaker.available() is True
    assert recover.calls == 1
    assert breaker.is_open is False


def test_only_one_caller_probes_while_others_skip_the_cache(clock):
    entered = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    def slow_recover() -> None:
        calls.append(threading.current_thread().name)
        entered.set()
        if not release.wait(WAIT):
            raise AssertionError("the probe was never released")

    breaker = CircuitBreaker(RESET, slow_recover, clock=clock)
    breaker.trip()
    clock.advance(RESET)
    results: dict[str, bool] = {}

    def call() -> None:
        results["prober"] = breaker.available()

    prober = threading.Thread(target=call, name="prober", daemon=True)
    prober.start()
    try:
        assert entered.wait(WAIT), "the probe did not start"
        # While the probe runs, everyone else is told to skip the cache, at once.
        others = []
        for _ in range(3):
            others.append(breaker.available())
            clock.advance(RESET)  # even long past reset_after: one probe at a time
        assert others == [False, False, False]
        other = threading.Thread(target=lambda: others.append(breaker.available()), daemon=True)
        other.start()
        other.join(WAIT)
        assert others == [False] * 4  # another thread too, and it did not wait for the probe
        assert breaker.is_open is True
    finally:
        release.set()
        prober.join(WAIT)
    assert not prober.is_alive()
    assert results == {"prober": True}
    assert calls == ["prober"]
    assert breaker.is_open is False
    assert breaker.available() is True
    assert calls == ["prober"]


def test_a_probe_that_fails_lets_the_next_due_caller_probe_again(clock):
    entered = threading.Event()
    release = threading.Event()
    calls = 0

    def failing_recover() -> None:
        nonlocal calls
        calls += 1
        entered.set()
        release.wait(WAIT)
        raise ConnectionError("still down")

    breaker = CircuitBreaker(RESET, failing_recover, clock=clock)
    breaker.trip()
    clock.advance(RESET)
    prober = threading.Thread(target=breaker.available, daemon=True)
    prober.start()
    try:
        assert entered.wait(WAIT)
        assert breaker.available() is False
        assert calls == 1
    finally:
        release.set()
        prober.join(WAIT)
    assert not prober.is_alive()
    assert breaker.is_open is True
    assert breaker.available() is False  # the wait restarted at the failure
    assert calls == 1
    clock.advance(RESET)
    assert breaker.available() is False  # release is set: this probe fails at once
    assert calls == 2
