"""Failed key checks under `tokensvc serve` with its defaults: counted per client address
across the worker processes through Redis, then 429 on every worker (README.md,
"Failed attempts")."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from tests.e2e.support import deployment, register
from tokensvc.auth import generate_key
from tokensvc.config import Settings

LIMIT = Settings.failed_auth_limit  # the default
WINDOW = Settings.rate_limit_window


def test_failed_key_checks_are_limited_across_the_workers(tmp_path: Path) -> None:
    with deployment("failed", tmp_path, {"TOKENSVC_WORKERS": "2"}) as (server, _):
        admin, proxy = server.create_key("admin"), server.create_key("proxy")
        server.start()
        token = register(server, admin)
        while time.time() % WINDOW > 2:  # early in a window: the flood fits in one
            time.sleep(0.1)
        # A new connection per request (Server.post): the requests spread over both workers.
        statuses = [
            server.post("/v1/tokens/validate", generate_key(), {"token": token}).status_code
            for _ in range(LIMIT + 20)
        ]
        assert set(statuses[:LIMIT]) == {401} and set(statuses[LIMIT:]) <= {401, 429}
        # Past the limit a worker learns the shared count at its own next failure: at most
        # one more 401 per worker in all (without sharing, each would answer LIMIT of them).
        assert statuses.count(401) <= LIMIT + server.workers - 1, statuses
        for _ in range(4):  # the real key from that address too, on every worker
            answer = server.post("/v1/tokens/validate", proxy, {"token": token})
            assert answer.status_code == 429, answer.text
            assert answer.headers["Content-Type"] == "application/problem+json"
            assert 1 <= int(answer.headers["Retry-After"]) <= WINDOW
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
