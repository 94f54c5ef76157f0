"""README "Running under another WSGI server": gunicorn on the app factory, as written,
from the checkout (whose own package is imported first) and from any other directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.fresh import background, copy_checkout, user_env, wait_for
from tests.support import free_port


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A copy of the checkout with its own venv, tokensvc installed (not editable) in it."""
    root = tmp_path_factory.mktemp("wsgi")
    checkout = copy_checkout(root / "checkout")
    env = user_env(root / "home")
    for command in (
        ["python3", "-m", "venv", ".venv"],
        [".venv/bin/pip", "install", "-q", ".[gunicorn]"],
    ):
        done = subprocess.run(
            command, cwd=checkout, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stderr
    return checkout, env


def test_gunicorn_serves_the_factory_from_the_checkout_and_elsewhere(installed, tmp_path):
    checkout, env = installed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The factory from anywhere; the checkout's three-line wsgi.py from the checkout.
    targets = ((checkout, "tokensvc.app:create_app()"), (elsewhere, "tokensvc.app:create_app()"))
    for number, (cwd, target) in enumerate((*targets, (checkout, "wsgi:app"))):
        port = free_port()
        database = {"TOKENSVC_DATABASE_URL": f"sqlite:///{tmp_path / f'wsgi{number}.db'}"}
        command = [str(checkout / ".venv/bin/gunicorn"), "--worker-class", "gthread"]
        command += ["--workers", "2", "--threads", "4", "--bind", f"127.0.0.1:{port}"]
        log = tmp_path / f"gunicorn{number}.log"
        with background([*command, target], cwd, env | database, log) as process:
            wait_for(f"http://127.0.0.1:{port}/healthz", process, log, 60)
            # Ready: the SQLite schema was migrated, so the alembic scripts were found.
            wait_for(f"http://127.0.0.1:{port}/readyz", process, log, 10)
