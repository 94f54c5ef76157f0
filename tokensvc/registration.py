"""Registering an instance's consoles from its libvirt domain XML (the compute side).

Graphics consoles are registered on their port. An instance's TCP serial
ports of one address are registered together as ``ports``: the service hands
out the next free one, so several users can each get a serial console.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import groupby

from tokensvc.client import Client, Registration
from tokensvc.drivers.libvirt import connections_from_domain_xml
from tokensvc.objects.console import ConsoleConnection


def _batches(found: list[ConsoleConnection]) -> Iterator[tuple[ConsoleConnection, list[int]]]:
    """(console, ports): serial consoles of one address as one batch, others alone."""
    serial = [c for c in found if c.console_type == "serial"]
    for connection in found:
        if connection.console_type != "serial":
            yield connection, [connection.port]
    for _, group in groupby(sorted(serial, key=lambda c: c.host), key=lambda c: c.host):
        consoles = list(group)
        yield consoles[0], [c.port for c in consoles]


class NoConsoles(ValueError):
    """The domain XML declares no console this service can register."""


def register_domain(
    client: Client,
    domain_xml: bytes,
    *,
    instance_uuid: str,
    address: str,
    vnc_tls: bool = False,
    ttl: int | None = None,
    access_urls: Mapping[str, str] | None = None,
) -> list[tuple[Registration, list[int]]]:
    """Each registration with the ports it was offered (one, or a serial batch's).

    ``access_urls``: the access URL template per console type (``{token}`` marks
    where the token goes); a type without one is registered without.
    """
    found = connections_from_domain_xml(
        domain_xml, instance_uuid=instance_uuid, address=address, vnc_tls=vnc_tls
    )
    if not found:
        raise NoConsoles("the domain XML has no console to register (no graphics, no TCP serial)")
    registered = []
    for console, ports in _batches(found):
        several = len(ports) > 1
        done = client.register_console(
            instance_uuid,
            console.host,
            None if several else ports[0],
            console.console_type,
            ports=ports if several else None,
            access_url=(access_urls or {}).get(console.console_type),
            options=console.options,
            ttl=ttl,
        )
        registered.append((done, ports))
    return registered
