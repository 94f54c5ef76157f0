"""How `tokensvc proxy` reaches a console: resolve, check every address, dial a checked one.

A console address comes from whoever registered it (a compute key), so the proxy
checks it against the rule of tokensvc.networks before it connects: a name is
resolved once, every address it resolves to is checked, and the proxy connects
to those addresses, never to the name again, so a second DNS answer cannot swap
in an address that was not checked.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from tokensvc.networks import IPNetwork, refusal

AddrInfo = tuple[Any, ...]  # one getaddrinfo() result: family, type, proto, name, sockaddr


class ConsoleRefused(Exception):
    """The console's address may not be dialled (``str()``: why, no token)."""


class ConsoleUnreachable(Exception):
    """The console's address cannot be resolved or connected to (``str()``: why)."""


def resolve(host: str, port: int, allowed: tuple[IPNetwork, ...]) -> list[AddrInfo]:
    """The TCP addresses of ``host``, each one allowed; ConsoleRefused if any is not."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except ValueError as exc:  # the IDNA codec or the resolver rejects the name itself
        raise ConsoleUnreachable(f"unusable host name ({type(exc).__name__})") from None
    except OSError as exc:
        raise ConsoleUnreachable(f"cannot resolve: {exc}") from None
    for info in found:
        address = ipaddress.ip_address(str(info[4][0]))
        reason = refusal(address, allowed)
        if reason is not None:
            raise ConsoleRefused(reason)
    return found


def connect(addresses: list[AddrInfo], timeout: float) -> socket.socket:
    """A connection to the first of ``addresses`` that answers (like create_connection)."""
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in addresses:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise ConsoleUnreachable(str(error) if error else "no address")


def dial(host: str, port: int, allowed: tuple[IPNetwork, ...], timeout: float) -> socket.socket:
    return connect(resolve(host, port, allowed), timeout)
