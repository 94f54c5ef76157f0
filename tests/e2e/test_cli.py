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
    assert set(shown) == {"id", "key", "role", "host", "proxy_id", "expires_at"}
    assert shown["expires_at"] is None
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


@pytest.mark.parametrize(
    "command",
    [
        ["keys", "list"],
        ["keys", "create", "--role", "admin"],
        ["db", "current"],
        ["purge", "--all"],
    ],
)
def test_a_command_without_a_configured_database_creates_none(tmp_path, command):
    result = Server({}, tmp_path).cli(*command)  # no TOKENSVC_DATABASE_URL, no tokensvc.db
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"tokensvc: configuration error: TOKENSVC_DATABASE_URL: not set, and there is no "
        f"{tmp_path}/tokensvc.db (run `tokensvc serve` first, or set the URL or "
        "TOKENSVC_STATE_DIR)"
    ]
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


def test_serve_writes_into_the_state_dir_never_the_current_directory(tmp_path):
    """Run from a source checkout, `serve` must leave the tree as it was."""
    checkout, home = tmp_path / "checkout", tmp_path / "home"
    checkout.mkdir()
    server = Server({"HOME": str(home)}, checkout)
    del server.env["TOKENSVC_STATE_DIR"]  # the default: ~/.local/state/tokensvc
    server.env.pop("XDG_STATE_HOME", None)
    server.log = tmp_path / "server.log"
    server.start()
    try:
        state = home / ".local" / "state" / "tokensvc"
        assert f"bootstrap admin key written to {state}/tokensvc-admin.key" in (
            server.log.read_text()
        )
        assert (state / "tokensvc.db").exists() and state.stat().st_mode & 0o777 == 0o700
        # Any directory: the other commands find the same database.
        assert server.cli("keys", "list").stdout.count("admin") == 1
    finally:
        server.stop()
    assert list(checkout.iterdir()) == []


def test_version_key_list_header_and_json_expiry(cli):
    assert cli.cli("--version").stdout.strip() == "tokensvc 0.1.0"
    created = cli.cli("keys", "create", "--role", "proxy", "--expires-in", "60", "--json")
    shown = json.loads(created.stdout)
    assert shown["expires_at"].endswith("Z") and len(shown["expires_at"]) == 20
    listed = cli.cli("keys", "list").stdout.splitlines()
    assert listed[0].split() == ["ID", "ROLE", "HOST/PROXY", "ID", "STATE", "EXPIRES"]
    assert listed[1].split()[0] == shown["id"] and listed[1].endswith(shown["expires_at"])


def test_command_list_is_not_cut_and_serve_help_names_its_settings(cli):
    commands = cli.cli("--help").stdout.split("Commands:")[1]
    assert "..." not in commands and len(commands.strip().splitlines()) == 8
    served = cli.cli("serve", "--help").stdout
    for setting in ("BIND", "WORKERS", "THREADS", "MAX_CONNECTIONS", "HEADER_TIMEOUT"):
        assert f"TOKENSVC_{setting}" in served
    assert "needs --host" in cli.cli("keys", "create", "--help").stdout
