"""Settings: defaults, parsing, and one clear line per bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokensvc.config import ConfigError, Settings


def test_defaults_are_embedded():
    settings = Settings.from_env({"HOME": "/home/u"})
    assert settings.state_dir == Path("/home/u/.local/state/tokensvc")
    assert settings.database_url == "sqlite:////home/u/.local/state/tokensvc/tokensvc.db"
    assert settings.uses_sqlite
    assert settings.redis_url is None and settings.queue_redis_url is None
    assert settings.console_tokens_backend == "database"
    assert settings.memcached_servers == (("127.0.0.1", 11211),)
    assert (settings.token_ttl, settings.max_token_ttl) == (600, 86400)
    assert (settings.cache_max_ttl, settings.negative_cache_ttl) == (300, 5)
    assert (settings.redis_timeout, settings.breaker_reset) == (0.25, 2.0)
    assert (settings.key_cache_ttl, settings.key_cache_stale) == (5, 300)
    assert (settings.lease_ttl, settings.enforce_session_timeout) == (30, False)
    assert (settings.purge_interval, settings.purge_batch) == (60, 1000)
    assert settings.bind == "127.0.0.1:8080"
    assert settings.workers == len(os.sched_getaffinity(0))


def test_values_are_parsed_and_typed():
    settings = Settings.from_env(
        {
            "TOKENSVC_DATABASE_URL": "mysql://root@127.0.0.1:3306/tokensvc",
            "TOKENSVC_REDIS_URL": "redis://127.0.0.1:6379/4",
            "TOKENSVC_CONSOLE_TOKENS_BACKEND": "Memcached",
            "TOKENSVC_MEMCACHED_SERVERS": "10.0.0.1:11211, [::1]:11212",
            "TOKENSVC_LEGACY_MEMCACHED_READ": "yes",
            "TOKENSVC_REDIS_TIMEOUT": "0.1",
            "TOKENSVC_WORKERS": "3",
            "TOKENSVC_THREADS": "8",
            "TOKENSVC_PURGE_PAUSE": "0",
        }
    )
    assert settings.queue_redis_url == "redis://127.0.0.1:6379/5"
    assert settings.console_tokens_backend == "memcached"
    assert settings.memcached_servers == (("10.0.0.1", 11211), ("::1", 11212))
    assert settings.legacy_memcached_read is True
    assert settings.redis_timeout == 0.1 and settings.workers == 3 and settings.threads == 8
    assert settings.purge_pause == 0
    assert not settings.uses_sqlite


@pytest.mark.parametrize(
    ("cache", "queue"),
    [
        ("redis://r:6379", "redis://r:6379/1"),
        ("rediss://:pw@r:6380/3", "rediss://:pw@r:6380/4"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock?db=1"),
        ("unix:///run/redis.sock?db=2&password=pw", "unix:///run/redis.sock?password=pw&db=3"),
    ],
)
def test_queue_redis_defaults_to_the_next_database(cache: str, queue: str) -> None:
    settings = Settings.from_env({"TOKENSVC_REDIS_URL": cache})
    assert settings.redis_url == cache
    assert settings.queue_redis_url == queue


def test_explicit_queue_redis_url_wins():
    settings = Settings.from_env(
        {"TOKENSVC_REDIS_URL": "redis://r:6379", "TOKENSVC_QUEUE_REDIS_URL": "redis://q:6379/2"}
    )
    assert settings.queue_redis_url == "redis://q:6379/2"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONSOLE_TOKENS_BACKEND", "etcd"),
        ("TOKEN_TTL", "-5"),
        ("TOKEN_TTL", "ten"),
        ("CACHE_MAX_TTL", "0"),
        ("REDIS_TIMEOUT", "0"),
        ("DATABASE_URL", "not a url at all"),
        ("DATABASE_URL", "postgresql://db/tokensvc"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("REDIS_URL", "redis://127.0.0.1:notaport"),
        ("REDIS_URL", "redis://127.0.0.1:6379/zero"),
        ("QUEUE_REDIS_URL", "unix:///run/redis.sock?db=one"),
        ("MEMCACHED_SERVERS", "127.0.0.1"),
        ("LEGACY_MEMCACHED_READ", "maybe"),
        ("BIND", "8080"),
        ("WORKERS", "0"),
        ("THREADS", "0"),
        ("PURGE_PAUSE", "-0.1"),
        ("PURGE_PAUSE", "inf"),
        ("PURGE_PAUSE", "nan"),
        ("PURGE_BATCH", "0"),
    ],
)
def test_bad_value_names_the_variable(name, value):
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({f"TOKENSVC_{name}": value})
    message = str(excinfo.value)
    assert message.startswith(f"TOKENSVC_{name}: ") and "\n" not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://tokensvc:s3cr3t-pw@db.example:notaport/tokensvc"),
        ("DATABASE_URL", "postgresql://tokensvc:s3cr3t-pw@db.example/tokensvc"),
        ("REDIS_URL", "redis://:s3cr3t-pw@cache.example:99999/0"),
        ("REDIS_URL", "http://user:s3cr3t-pw@cache.example/0"),
        ("QUEUE_REDIS_URL", "rediss://user:s3cr3t-pw@cache.example:6379/zero"),
    ],
)
def test_a_bad_url_is_named_without_its_password(name, value):
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({f"TOKENSVC_{name}": value})
    message = str(excinfo.value)
    assert message.startswith(f"TOKENSVC_{name}: ") and "s3cr3t-pw" not in message


def test_console_networks_are_cidrs():
    parsed = Settings.from_env({"TOKENSVC_CONSOLE_NETWORKS": "127.0.0.0/8, ::1"})
    assert [str(n) for n in parsed.console_networks] == ["127.0.0.0/8", "::1/128"]
    with pytest.raises(ConfigError, match=r"^TOKENSVC_CONSOLE_NETWORKS: not a network .*'lo'"):
        Settings.from_env({"TOKENSVC_CONSOLE_NETWORKS": "10.0.0.0/8,lo"})


def test_token_ttl_over_max_is_refused():
    with pytest.raises(ConfigError, match=r"^TOKENSVC_TOKEN_TTL: must not exceed"):
        Settings.from_env({"TOKENSVC_TOKEN_TTL": "90000"})


def test_unknown_setting_is_refused():
    with pytest.raises(ConfigError, match=r"^TOKENSVC_TOKEN_TTLS: unknown setting"):
        Settings.from_env({"TOKENSVC_TOKEN_TTLS": "5"})


def test_cli_stops_with_one_line(tmp_path):
    env = dict(os.environ, TOKENSVC_CONSOLE_TOKENS_BACKEND="etcd")
    result = subprocess.run(
        [sys.executable, "-m", "tokensvc", "db", "current"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tokensvc: configuration error: TOKENSVC_CONSOLE_TOKENS_BACKEND: "
        "must be one of database, memcached, got 'etcd'"
    ]
