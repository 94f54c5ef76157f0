"""A circuit breaker for the cache: a dead or hanging Redis costs one timeout.

Closed: calls go through. A failure opens it: callers skip the cache for
``reset_after`` seconds. Then one caller runs ``recover`` (a probe that also
applies pending invalidations); on success the breaker closes, and only then is
the cache trusted again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(
        self,
        reset_after: float,
        recover: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reset_after = reset_after
        self._recover = recover
        self._clock = clock
        self._lock = threading.Lock()
        self._open = False
        self._opened_at = 0.0
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._open

    def available(self) -> bool:
        """True when the cache may be used; runs the half-open probe when due."""
        if not self._open:  # the hot path: one attribute read
            return True
        with self._lock:
            if not self._open:
                return True
            if self._probing or self._clock() - self._opened_at < self.reset_after:
                return False
            self._probing = True
        try:
            self._recover()
        except Exception:
            with self._lock:
                self._probing = False
                self._opened_at = self._clock()
            return False
        with self._lock:
            self._probing = False
            self._open = False
        return True

    def trip(self) -> None:
        with self._lock:
            self._open = True
            self._opened_at = self._clock()
