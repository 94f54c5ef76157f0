"""A token plugin for an unmodified websockify: lookup only, no lease.

    websockify --token-plugin tokensvc.integrations.websockify.TokenPlugin \\
        --token-source 'https://tokens.example:8080,/etc/tokensvc/proxy.key' 0.0.0.0:6080

The source is ``URL,KEYFILE``: the service's base URL and a file holding a proxy key
(the key is read from the file, never given on the command line). Each lookup
validates the token with tokensvc and answers the console's ``(host, port)``, or None
for an unknown, expired or revoked token and when the service cannot be reached.

This is for setups that cannot run `tokensvc proxy`, and it does less: no lease is
taken, so the service does not know who is on a console, two users can share one,
revocation does not reach live sessions, and refusals are failed HTTP upgrades
rather than websocket close codes. websockify also relays each connection in a child
process of its own, which outlives a websockify killed with SIGKILL.

Logging: this plugin never logs a token. websockify itself does, whatever the plugin:
it logs request paths, which carry the token in their ``token=`` query parameter
("Path: '/?token=...'"), and names the token of a refused lookup ("Token '...' not
found"). Keep websockify's logs as secret as the tokens, or use `tokensvc proxy`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tokensvc.client import Client
from tokensvc.errors import InvalidToken, TokensvcError

log = logging.getLogger(__name__)


class TokenPlugin:
    """websockify's token plugin interface: ``TokenPlugin(source).lookup(token)``."""

    def __init__(self, src: str | None) -> None:
        # websockify builds the plugin at start: a bad source stops it with one line
        # (SystemExit), not a traceback.
        url, sep, key_file = (src or "").rpartition(",")
        if not sep or not url.strip() or not key_file.strip():
            raise SystemExit("tokensvc plugin: --token-source must be 'URL,KEYFILE'")
        self.source = src
        self.url = url.strip()
        path = Path(key_file.strip())
        try:
            self._key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SystemExit(f"tokensvc plugin: cannot read the key file {path}: {exc}") from None
        if not self._key:
            raise SystemExit(f"tokensvc plugin: the key file {path} is empty")

    def lookup(self, token: str) -> tuple[str, int] | None:
        """The console the token opens, or None (websockify then refuses the client)."""
        try:
            # A client per lookup: websockify forks a process per connection after this
            # plugin is built, and a pooled connection must never be shared across forks.
            with Client(self.url, self._key) as client:
                connection = client.validate(token)
        except InvalidToken:
            log.info("tokensvc: token refused")
            return None
        except TokensvcError as exc:
            log.warning("tokensvc: lookup failed: %s", exc.detail)
            return None
        return connection.host, connection.port
