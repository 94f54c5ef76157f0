"""What `tokensvc proxy` is told on its command line (README.md, "Console proxy")."""

from __future__ import annotations

import dataclasses
from pathlib import Path


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
