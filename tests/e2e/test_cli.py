"""The `tokensvc` command line: keys and db, as an operator types them."""

from __future__ import annotations

import json

import pytest

from tests.e2e.support import Server
from tokensvc.app import create_app
from tokensvc.config import Settings
from tokensvc.db import schema


@pytest.fixture
def cli(tmp_path):
    return Server({"TOKENSVC_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}, tmp_path)


def test_keys_create_json_prints_exactly_one_object(cli):
    result = cli.cli("keys", "create", "--role", "compute", "--host", "compute-7", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert set(shown) == {"id", "key", "role", "host", "proxy_id"}
    assert (shown["role"], shown["host"], shown["proxy_id"]) == ("compute", "compute-7", None)
    assert shown["key"].startswith("tsk_") and "shown once" in result.stderr
    listed = cli.cli("keys", "list").stdout
    assert shown["id"] in listed and shown["key"] not in listed and "active" in listed


def test_revoked_key_is_refused(cli, tmp_path):
    created = json.loads(cli.cli("keys", "create", "--role", "admin", "--json").stdout)
    assert cli.cli("keys", "revoke", created["id"]).returncode == 0
    assert "revoked" in cli.cli("keys", "list").stdout
    assert cli.cli("keys", "revoke", created["id"]).returncode == 1  # already revoked
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'cli.db'}"))
    answer = app.test_client().get(
        "/metrics", headers={"Authorization": f"Bearer {created['key']}"}
    )
    assert answer.status_code == 401


@pytest.mark.parametrize(
    "args",
    [
        ["--role", "compute"],
        ["--role", "admin", "--host", "h"],
        ["--role", "admin", "--proxy-id", "p"],
        ["--role", "root"],
        ["--role", "proxy", "--expires-in", "0"],
    ],
)
def test_bad_key_options_are_usage_errors(cli, args):
    result = cli.cli("keys", "create", *args)
    assert result.returncode == 2 and "Error" in result.stderr and "tsk_" not in result.stdout


def test_db_upgrade_downgrade_current(cli):
    head = schema.head_revision()
    assert cli.cli("db", "upgrade").stdout.strip() == f"database at {head}"
    assert cli.cli("db", "current").stdout.strip() == f"{head} (head)"
    assert cli.cli("db", "downgrade", "0001").stdout.strip() == "database at 0001"
    assert cli.cli("db", "current").stdout.strip() == f"0001 (head is {head})"
    assert cli.cli("db", "downgrade", "base").stdout.strip() == "database at base"


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_workers_without_redis_say_so_in_one_line(cli, command):
    result = cli.cli(command)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "tokensvc: configuration error: TOKENSVC_REDIS_URL: not set; "
        "workers and the scheduler need Redis"
    ]
