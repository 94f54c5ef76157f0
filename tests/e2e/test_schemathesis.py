"""A bounded schemathesis run over a real `tokensvc serve`'s /openapi.json.

Each role's operations are fuzzed with that role's key (admin, proxy, compute),
on MariaDB and Redis, through every phase (examples, coverage, fuzzing,
stateful) and every check: a 5xx, an answer the schema does not allow (status,
content type, headers, body), invalid data accepted or valid data refused, an
ignored key: any one fails the test, with schemathesis's report (a curl line to
reproduce each failure) as the message. About 2 minutes in all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.support import Server, deployment
from tokensvc.app import BLUEPRINTS

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
PUBLIC = ("GET /healthz", "GET /readyz")
# Cases per operation and phase. A fixed seed keeps CI repeatable; SCHEMATHESIS_SEED
# (e.g. "random") explores other cases.
MAX_EXAMPLES = {"admin": 100, "proxy": 150, "compute": 100}
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261203")
COMPUTE_HOST = "compute-a"
SERVICE = {
    # No 429 for the fuzzer's thousands of bad keys and tokens, no long polls.
    "TOKENSVC_FAILED_AUTH_LIMIT": "0",
    "TOKENSVC_INVALID_TOKEN_LIMIT": "0",
    "TOKENSVC_CLOSE_FEED_WAIT": "0",
    # Which console addresses are dialled is a setting the schema cannot say: every
    # address is allowed here (the rule has tests of its own: test_input_hardening.py).
    "TOKENSVC_CONSOLE_NETWORKS": "0.0.0.0/0,::/0",
}
# The stateful phase reads "DELETE /v1/instances/{uuid}/consoles" (revoke them all)
# as deleting the list, which stays readable (and empty): not a defect.
EXCLUDED_CHECKS = "use_after_free"


def operations(role: str) -> list[str]:
    """The operations a key of ``role`` may call, as schemathesis names them."""
    names = [
        f"{op.method} {op.rule.replace('<', '{').replace('>', '}')}"
        for blueprint in BLUEPRINTS
        for op in blueprint.operations
        if role in op.roles
    ]
    return names + list(PUBLIC) if role == "admin" else names


def key_for(server: Server, role: str) -> str:
    args = ["keys", "create", "--role", role, "--json"]
    created = server.cli(*args, *(["--host", COMPUTE_HOST] if role == "compute" else []))
    assert created.returncode == 0, created.stderr
    key: str = json.loads(created.stdout)["key"]
    return key


def fuzz(server: Server, role: str, key: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    selected = [arg for name in operations(role) for arg in ("--include-name", name)]
    command = [
        SCHEMATHESIS,
        "run",
        f"{server.url}/openapi.json",
        *selected,
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES[role]),
        "--workers",
        "1",  # its worker threads share hypothesis caches that are not thread-safe
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
        "--no-color",
        *([] if SEED == "random" else ["--seed", SEED]),
    ]
    return subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize("role", list(MAX_EXAMPLES))
def test_the_api_answers_as_its_schema_says(role, tmp_path):
    with deployment(f"fuzz_{role}", tmp_path, SERVICE) as (server, _):
        key = key_for(server, role)
        server.start()
        run = fuzz(server, role, key, tmp_path)
    failed = run.returncode  # (the command line holds the key: keep it out of the report)
    assert failed == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert "generated" in run.stdout and " 0 generated" not in run.stdout, run.stdout
