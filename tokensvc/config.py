"""Settings from ``TOKENSVC_*`` environment variables: the only place env is read.

Every setting (README.md, "Settings") is parsed, typed and validated once, in
:meth:`Settings.from_env`. A bad value raises :class:`ConfigError` whose message
is one line naming the variable, which the CLI prints before exiting.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tokensvc.networks import IPNetwork, parse_networks

PREFIX = "TOKENSVC_"
Backend = Literal["database", "memcached"]
BACKENDS: tuple[Backend, ...] = ("database", "memcached")
LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
REDIS_SCHEMES = ("redis", "rediss", "unix")


DEFAULT_SQLITE_FILE = "tokensvc.db"  # in the state directory


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/tokensvc``, else ``~/.local/state/tokensvc``: per user and outside
    any source checkout, so a run never writes into the tree it was installed from, and
    every command finds the same default database whatever the current directory."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or os.path.join(env.get("HOME") or "~", ".local", "state")
    return Path(os.path.expanduser(base)) / "tokensvc"


class ConfigError(ValueError):
    """A setting has a bad value; the message names the variable."""


def require_existing_database(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """For commands that use a database rather than make one (all but ``serve``): with
    no TOKENSVC_DATABASE_URL, the default SQLite file must exist already, or a command
    run with another state directory would quietly start an empty database."""
    env = os.environ if environ is None else environ
    default = settings.state_dir / DEFAULT_SQLITE_FILE
    if PREFIX + "DATABASE_URL" not in env and not default.exists():
        raise ConfigError(
            f"{PREFIX}DATABASE_URL: not set, and there is no {default} "
            f"(run `tokensvc serve` first, or set the URL or {PREFIX}STATE_DIR)"
        )


def _int(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            raise ValueError(f"must be {bound}, got {value}")
        return value

    return parse


def _float(low: float, high: float | None = None) -> Callable[[str], float]:
    """Above ``low``; with ``high``, from ``low`` to ``high`` inclusive."""

    def parse(raw: str) -> float:
        value = float(raw.strip())
        if high is None and not value > low:
            raise ValueError(f"must be > {low}, got {value}")
        if high is not None and not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def _choice(choices: tuple[str, ...], *, upper: bool = False) -> Callable[[str], Any]:
    def parse(raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _networks(raw: str) -> tuple[IPNetwork, ...]:
    return parse_networks(raw.split(","))


def _redacted(raw: str) -> str:
    """A URL as an error message may show it: any password replaced by ``***``."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", raw.strip())


def _database_url(raw: str) -> str:
    try:
        url = make_url(raw.strip())
    except (ArgumentError, ValueError):
        raise ValueError(f"cannot parse database URL {_redacted(raw)!r}") from None
    if url.get_backend_name() not in ("sqlite", "mysql", "mariadb"):
        raise ValueError(f"unsupported database {url.get_backend_name()!r} (sqlite, mysql)")
    return url.render_as_string(hide_password=False)


def _redis_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"must be a redis://, rediss:// or unix:// URL, got {_redacted(raw)!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"has no host: {_redacted(raw)!r}")
    try:
        _ = parts.port
        _redis_db(parts)
    except ValueError as exc:
        raise ValueError(f"cannot parse {_redacted(raw)!r} ({exc})") from None
    return raw.strip()


def _redis_db(parts: SplitResult) -> int:
    """The database index: the path of redis:// URLs, ``?db=`` of unix:// (socket) ones."""
    if parts.scheme == "unix":
        index = dict(parse_qsl(parts.query)).get("db", "")
    else:
        index = parts.path.strip("/")
    return int(index) if index else 0


def next_redis_db(url: str) -> str:
    """The same Redis server with database index + 1 (the queue's default)."""
    parts = urlsplit(url)
    index = _redis_db(parts) + 1
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(index))]
        # (urlunsplit would drop the empty authority: unix:/path, not unix:///path)
        return f"unix://{parts.netloc}{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{index}"))


def _memcached_servers(raw: str) -> tuple[tuple[str, int], ...]:
    servers = []
    for item in raw.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host:
            raise ValueError(f"expected comma-separated host:port, got {item.strip()!r}")
        servers.append((host.strip("[]"), _int(1, 65535)(port)))
    return tuple(servers)


def _directory(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("must name a directory, got an empty value")
    return Path(os.path.expanduser(raw.strip()))


def _bind(raw: str) -> str:
    host, sep, port = raw.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {raw!r}")
    _int(0, 65535)(port)
    return raw.strip()


def _default_workers() -> int:
    """One worker per usable core: granian warns above that, and measured no gain."""
    return len(os.sched_getaffinity(0)) or 1


@dataclasses.dataclass(frozen=True)
class Settings:
    """Typed, validated settings. Field names are the variable names, lowercased."""

    # Where `serve` writes what it makes: the default SQLite file and the bootstrap key.
    state_dir: Path = dataclasses.field(default_factory=default_state_dir)
    # Empty: the SQLite file DEFAULT_SQLITE_FILE in state_dir (filled in __post_init__).
    database_url: str = ""
    redis_url: str | None = None
    queue_redis_url: str | None = None
    console_tokens_backend: Backend = "database"
    memcached_servers: tuple[tuple[str, int], ...] = (("127.0.0.1", 11211),)
    legacy_memcached_read: bool = False
    token_ttl: int = 600
    max_token_ttl: int = 86400
    cache_max_ttl: int = 300
    negative_cache_ttl: int = 5
    redis_timeout: float = 0.25
    breaker_reset: float = 2.0
    key_cache_ttl: int = 5
    key_cache_stale: int = 300
    lease_ttl: int = 30
    enforce_session_timeout: bool = False
    purge_interval: int = 60
    purge_batch: int = 1000
    # Seconds the purge job rests between batches: the database's CPU goes to the hot path
    # first (bench/: validate's p99 during a 1M-row purge).
    purge_pause: float = 0.1
    bind: str = "127.0.0.1:8080"
    workers: int = dataclasses.field(default_factory=_default_workers)
    # Request threads per worker. Few, by measurement (bench/): with 16, the GIL's
    # convoy made validate's p99 ten times its p50; 4 kept the throughput.
    threads: int = 4
    # Open client connections per worker process, idle keep-alive ones included: each is
    # an async task in granian, not a request thread, so this is sized for slow and idle
    # clients (200 idle sockets must not stop the API), not for CPU.
    max_connections: int = 1024
    # Seconds a client has to send a request's headers, and an idle keep-alive connection
    # lives: half-sent requests and idle sockets are dropped after it.
    header_timeout: float = 5.0
    # Console addresses allowed although loopback, link-local, unspecified or multicast
    # (tokensvc/networks.py): none by default.
    console_networks: tuple[IPNetwork, ...] = ()
    log_level: str = "INFO"
    log_format: LogFormat = "text"
    # Per client address and window: failed key checks, and invalid-token answers, before
    # 429 (0: no limit). A shared count in Redis when there is one, else per process.
    rate_limit_window: int = 10
    failed_auth_limit: int = 50
    invalid_token_limit: int = 500
    # Longest a proxy's close feed call waits for a close before it answers empty.
    close_feed_wait: float = 20.0

    def __post_init__(self) -> None:
        if not self.database_url:
            default = f"sqlite:///{self.state_dir / DEFAULT_SQLITE_FILE}"
            object.__setattr__(self, "database_url", default)
        if self.token_ttl > self.max_token_ttl:
            raise ConfigError(
                f"{PREFIX}TOKEN_TTL: must not exceed {PREFIX}MAX_TOKEN_TTL "
                f"({self.token_ttl} > {self.max_token_ttl})"
            )
        if self.queue_redis_url is None and self.redis_url is not None:
            object.__setattr__(self, "queue_redis_url", next_redis_db(self.redis_url))

    @property
    def default_database_file(self) -> Path | None:
        """The SQLite file in state_dir when no other database is configured."""
        default = self.state_dir / DEFAULT_SQLITE_FILE
        return default if self.database_url == f"sqlite:///{default}" else None

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse every ``TOKENSVC_*`` variable; unset ones keep their default."""
        env = os.environ if environ is None else environ
        known = {f.name.upper() for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in env if k.startswith(PREFIX) and k[len(PREFIX) :] not in known)
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown setting")
        values: dict[str, Any] = {}
        for name, parse in _PARSERS.items():
            raw = env.get(PREFIX + name.upper())
            if raw is None:
                continue
            try:
                values[name] = parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{PREFIX}{name.upper()}: {exc}") from None
        values.setdefault("state_dir", default_state_dir(env))
        return cls(**values)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "state_dir": _directory,
    "database_url": _database_url,
    "redis_url": _redis_url,
    "queue_redis_url": _redis_url,
    "console_tokens_backend": _choice(BACKENDS),
    "memcached_servers": _memcached_servers,
    "legacy_memcached_read": _bool,
    "token_ttl": _int(1),
    "max_token_ttl": _int(1),
    "cache_max_ttl": _int(1),
    "negative_cache_ttl": _int(1),
    "redis_timeout": _float(0),
    "breaker_reset": _float(0),
    "key_cache_ttl": _int(0),
    "key_cache_stale": _int(0),
    "lease_ttl": _int(3),
    "enforce_session_timeout": _bool,
    "purge_interval": _int(1),
    "purge_batch": _int(1, 100_000),
    "purge_pause": _float(0, 60),
    "bind": _bind,
    "workers": _int(1, 256),
    "threads": _int(1, 256),
    "max_connections": _int(16, 65536),
    "header_timeout": _float(0.001, 60),
    "console_networks": _networks,
    "log_level": _choice(LOG_LEVELS, upper=True),
    "log_format": _choice(LOG_FORMATS),
    "rate_limit_window": _int(1, 3600),
    "failed_auth_limit": _int(0),
    "invalid_token_limit": _int(0),
    "close_feed_wait": _float(0, 60),
}
