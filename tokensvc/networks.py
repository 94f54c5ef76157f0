"""Which console addresses may be dialled: the service and the proxy share one rule.

A console address is what a proxy connects to on a user's behalf, so a compute key
that could register ``127.0.0.1:6379`` would point the proxy at the proxy host's
own services. By default loopback, link-local, unspecified and multicast addresses
are refused; an operator who runs consoles there names those networks explicitly
(``TOKENSVC_CONSOLE_NETWORKS`` on the service, ``--allow-console-network`` on the
proxy). Every other address is allowed. README.md, "Console addresses".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(raw: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (``10.0.0.0/8``, ``::1/128``) or single addresses; ValueError names a bad one."""
    networks = []
    for item in raw:
        text = item.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"not a network in CIDR notation: {text!r}") from None
    return tuple(networks)


def refusal(address: IPAddress, allowed: tuple[IPNetwork, ...]) -> str | None:
    """Why ``address`` may not be dialled, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    if any(address in network for network in allowed):
        return None
    for kind in ("loopback", "link_local", "unspecified", "multicast"):
        if getattr(address, f"is_{kind}"):
            return f"{address} is a {kind.replace('_', '-')} address"
    return None


# RFC 6761 §6.3: these names are loopback wherever they are resolved.
_LOOPBACKS = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def host_refusal(host: str, allowed: tuple[IPNetwork, ...]) -> str | None:
    """``refusal`` for a console ``host`` as registered: an IP literal or a name.

    Names other than ``localhost`` are resolved, and checked, by the proxy.
    """
    try:
        return refusal(ipaddress.ip_address(host), allowed)
    except ValueError:
        pass
    name = host.rstrip(".").lower()
    loopback = name == "localhost" or name.endswith(".localhost")
    if loopback and all(refusal(address, allowed) for address in _LOOPBACKS):
        return f"{host} is a loopback name (RFC 6761)"
    return None
