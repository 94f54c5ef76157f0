"""What `tokensvc proxy` is told on its command line (README.md, "Console proxy")."""

from __future__ import annotations

import dataclasses
import os
import resource
from pathlib import Path

from tokensvc.networks import IPNetwork

RESERVED_FILES = 64  # descriptors kept for the listener, logs and calls to tokensvc
FILES_PER_SESSION = 3  # the user's socket, the console's, a call to tokensvc while admitting
SESSIONS_PER_CORE = 256  # a relay thread per session, each framing in Python under one GIL


def machine_max_connections() -> int:
    """The default of ``--max-connections``: what the descriptors and cores can carry.

    Each connection is a thread and up to three file descriptors, so the open-file
    limit bounds it; the cores bound it too, as every relay frames in Python.
    """
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    files = (soft - RESERVED_FILES) // FILES_PER_SESSION
    if soft == resource.RLIM_INFINITY:
        files = 1 << 20
    return max(16, min(files, SESSIONS_PER_CORE * (os.cpu_count() or 1)))


@dataclasses.dataclass(frozen=True)
class ProxyOptions:
    listen_host: str
    listen_port: int
    service_url: str
    key_file: Path
    proxy_id: str
    console_type: str | None = None
    allowed_origins: tuple[str, ...] = ()
    web: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ca_file: Path | None = None
    # Seconds sessions may run on after SIGTERM before they are closed with 1001.
    grace: float = 10.0
    # Console networks dialled although tokensvc.networks refuses them by default.
    allowed_networks: tuple[IPNetwork, ...] = ()
    # Open client connections at most (None: machine_max_connections()).
    max_connections: int | None = None
    # Seconds from accept until the websocket request (TLS handshake included) is in.
    handshake_timeout: float = 10.0
    # Invalid tokens one user address may present per INVALID_TOKEN_WINDOW before it is
    # turned away (4029) without asking the service (0: no limit).
    invalid_token_limit: int = 20


# Seconds over which --invalid-token-limit counts a user's invalid tokens.
INVALID_TOKEN_WINDOW = 10
