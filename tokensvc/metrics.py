"""Prometheus metrics, per app (no import-time registration).

Under a multi-process server set ``PROMETHEUS_MULTIPROC_DIR`` (``tokensvc
serve`` does): every worker then writes its samples there and ``/metrics``
aggregates them all.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Every label value comes from a bounded set: a label spelled as the client sent it
# (a 60 KB method name, a path per token) would grow the series, and under
# PROMETHEUS_MULTIPROC_DIR the sample files, without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "other"


class Metrics:
    def __init__(self) -> None:
        # prometheus-client picks its value store when first imported; a server that
        # sets the directory later (or forks workers) needs it picked again here.
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.validate = Counter(
            "tokensvc_validate",
            "Token validations by outcome: hit (Redis), miss (Redis then database), "
            "database (no cache in use), invalid",
            ["result"],
            registry=self.registry,
        )
        self.cache_errors = Counter(
            "tokensvc_cache_errors", "Redis errors that opened the breaker", registry=self.registry
        )
        self.sessions = Counter(
            "tokensvc_sessions",
            "Console sessions: connect, refused (port busy), disconnect, forced",
            ["event"],
            registry=self.registry,
        )
        self.legacy_imports = Counter(
            "tokensvc_legacy_imports",
            "Tokens imported from memcached on first use (LEGACY_MEMCACHED_READ)",
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "tokensvc_request_duration_seconds",
            "Request latency by route",
            ["route", "method", "status"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )

    def render(self) -> bytes:
        if os.environ.get(MULTIPROC_ENV):
            aggregated = CollectorRegistry()
            multiprocess.MultiProcessCollector(aggregated)  # type: ignore[no-untyped-call]
            return generate_latest(aggregated)
        return generate_latest(self.registry)
