"""The processes a bench run starts: a private Redis and memcached, and the WSGI servers.

Everything listens on 127.0.0.1 only. Each server runs with the same settings: 2
workers (the issue's setting) and ``tokensvc serve``'s default request threads a worker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import requests

from tokensvc.config import Settings
from tokensvc.metrics import MULTIPROC_ENV

# What `tokensvc serve` runs with its defaults (or TOKENSVC_WORKERS / TOKENSVC_THREADS);
# gunicorn is given the same.
WORKERS = Settings.from_env().workers
THREADS = Settings.from_env().threads
SERVERS = ("granian", "gunicorn")
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until(ready: object, what: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError, requests.RequestException):
            if callable(ready) and ready():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout}s")


@contextlib.contextmanager
def _process(
    command: list[str], what: str, ready: object, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed below)
    process = subprocess.Popen(  # noqa: S603 (our own arguments)
        command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True
    )
    try:
        _wait_until(ready, what, process, timeout=30)
        yield process
    except BaseException:
        log.seek(0)
        sys.stderr.write(log.read().decode(errors="replace")[-4000:])
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
        log.close()


def _port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server (no persistence), so INFO memory is ours alone; its URL."""
    port = free_port()
    command = [shutil.which("redis-server") or "redis-server", "--port", str(port)]
    command += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with _process(command, "redis-server", lambda: _port_open(port)):
        yield f"redis://127.0.0.1:{port}/0"


@contextlib.contextmanager
def memcached_server() -> Iterator[str]:
    port = free_port()
    command = [shutil.which("memcached") or "/usr/bin/memcached", "-l", "127.0.0.1"]
    command += ["-p", str(port), "-U", "0", "-m", "256", "-u", "root"]
    with _process(command, "memcached", lambda: _port_open(port)):
        yield f"127.0.0.1:{port}"


def _server_command(server: str, target: str, port: int, service: bool) -> list[str]:
    bind = f"127.0.0.1:{port}"
    if server == "gunicorn":
        gunicorn = [sys.executable, "-m", "gunicorn", "--worker-class", "gthread"]
        gunicorn += ["--workers", str(WORKERS), "--threads", str(THREADS), "--bind", bind]
        return [*gunicorn, "--log-level", "warning", f"{target}()"]
    if service:  # the real thing: what operators run
        return [str(Path(sys.executable).with_name("tokensvc")), "serve"]
    return [sys.executable, "-m", "bench.serve", target]


@contextlib.contextmanager
def wsgi_server(
    server: str, target: str, settings: Mapping[str, str], *, service: bool, probe: str
) -> Iterator[str]:
    """One WSGI server (granian or gunicorn) around an app factory; its base URL."""
    port = free_port()
    env = dict(os.environ) | dict(settings)
    env["TOKENSVC_BIND"] = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as metrics:
        env[MULTIPROC_ENV] = metrics
        url = f"http://127.0.0.1:{port}"
        command = _server_command(server, target, port, service)

        def ready() -> bool:
            return requests.get(url + probe, timeout=1).status_code == 200

        with _process(command, f"{server} {target}", ready, env):
            yield url


@contextlib.contextmanager
def worker(settings: Mapping[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``tokensvc worker --burst``: runs what is queued, then exits."""
    command = [str(Path(sys.executable).with_name("tokensvc")), "worker", "--burst"]
    env = dict(os.environ) | dict(settings)
    with _process(command, "tokensvc worker", lambda: True, env) as process:
        yield process
