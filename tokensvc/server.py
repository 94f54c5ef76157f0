"""``tokensvc serve``: granian's WSGI workers around the app factory.

Granian was chosen by measurement: its WSGI mode served 1.7 to 1.8 times the
requests of gunicorn's gthread workers (same workers and threads) on these 2-core
machines (docs/benchmarks.md). The server adds nothing the app needs, except the
state directory and the bootstrap admin key on an empty key table (written there to
a 0600 file; the path is printed, never the key).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import click
from granian import Granian
from granian.constants import Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.common import AbstractServer

from tokensvc import logs
from tokensvc.auth import generate_key, hash_key
from tokensvc.config import Settings
from tokensvc.db import schema
from tokensvc.db.engine import make_engine
from tokensvc.db.service_keys import ServiceKeyStore
from tokensvc.metrics import MULTIPROC_ENV

BOOTSTRAP_KEY_FILE = "tokensvc-admin.key"
BACKLOG = 1024  # the kernel's accept queue (granian's default)
STOP_TIMEOUT = 5  # seconds a stopping worker gets to finish its requests


def bootstrap_admin_key(keys: ServiceKeyStore, directory: Path) -> Path | None:
    """On an empty key table, create an admin key in a new 0600 file; its path.

    An existing key file is never overwritten (it may hold the key of another
    database): the key goes to ``tokensvc-admin-2.key``, ``-3``, ... instead.
    """
    if keys.list():
        return None
    _make_state_dir(directory)
    secret = generate_key()
    path, descriptor = _new_key_file(directory)
    with os.fdopen(descriptor, "w") as key_file:
        key_file.write(secret + "\n")
    keys.create(hash_key(secret), "admin")
    return path


def _make_state_dir(directory: Path) -> None:
    """0700: it holds the bootstrap admin key and, by default, the SQLite database."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def _new_key_file(directory: Path) -> tuple[Path, int]:
    """The first of tokensvc-admin.key, tokensvc-admin-2.key, ... that does not exist,
    created 0600; its path and descriptor."""
    stem = BOOTSTRAP_KEY_FILE.removesuffix(".key")
    number = 1
    while True:
        path = directory / (BOOTSTRAP_KEY_FILE if number == 1 else f"{stem}-{number}.key")
        try:
            return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            number += 1


def serve(settings: Settings, *, tls_cert: Path | None, tls_key: Path | None) -> None:
    logs.configure(settings)  # granian configures it again, here and in each worker
    if settings.default_database_file is not None:
        _make_state_dir(settings.state_dir)
    engine = make_engine(settings.database_url)
    schema.ensure_schema(engine)  # fail here, once, rather than in every worker
    written = bootstrap_admin_key(ServiceKeyStore(engine), settings.state_dir)
    engine.dispose()
    if written is not None:
        click.echo(f"bootstrap admin key written to {written} (mode 0600)", err=True)
        if written.name != BOOTSTRAP_KEY_FILE:
            click.echo(f"({BOOTSTRAP_KEY_FILE} exists already and was left as it is)", err=True)
    # Workers inherit this and write their samples there; /metrics aggregates them.
    os.environ.setdefault(MULTIPROC_ENV, tempfile.mkdtemp(prefix="tokensvc-metrics-"))
    wsgi_server("tokensvc.app:create_app", settings, tls_cert=tls_cert, tls_key=tls_key).serve()


def wsgi_server(
    target: str,
    settings: Settings,
    *,
    factory: bool = True,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> AbstractServer[Any]:
    """Granian's WSGI mode as ``serve`` runs it (bench/ serves its floors with it too).

    Connections and request threads are sized apart. A connection is an async task in
    granian's runtime and costs a permit of ``backpressure`` for as long as it is open,
    idle or not; a request thread runs one request. So the permits are many (idle and
    slow clients cannot starve the API) and the threads few (by measurement, see
    docs/benchmarks.md); the header deadline drops half-sent requests and idle
    keep-alive connections. The API checks the service key before it reads a body.
    """
    host, _, port = settings.bind.rpartition(":")
    return Granian(
        target,
        factory=factory,
        interface=Interfaces.WSGI,
        address=host.strip("[]"),
        port=int(port),
        workers=settings.workers,
        blocking_threads=settings.threads,
        backlog=max(BACKLOG, settings.max_connections),
        backpressure=settings.max_connections,
        http1_settings=HTTP1Settings(header_read_timeout=round(settings.header_timeout * 1000)),
        ssl_cert=tls_cert,
        ssl_key=tls_key,
        # Granian's start/stop lines stay at INFO whatever TOKENSVC_LOG_LEVEL says.
        log_level=LogLevels.info,
        log_dictconfig=logs.dict_config(settings),
        # A stop waits this long for requests in flight, then kills the worker: a proxy's
        # close feed call may wait CLOSE_FEED_WAIT seconds, and is retried by the proxy.
        workers_kill_timeout=STOP_TIMEOUT,
    )
