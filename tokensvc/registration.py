"""Registering an instance's consoles from its libvirt domain XML (the compute side).

Graphics consoles are registered on their port. An instance's TCP serial
ports of one address are registered together as ``ports``: the service hands
out the next free one, so several users can each get a serial console.
"""

from __future__ import annotations

from collections.abc import Iterator
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


def register_domain(
    client: Client,
    domain_xml: bytes,
    *,
    instance_uuid: str,
    address: str,
    vnc_tls: bool = False,
    ttl: int | None = None,
) -> list[Registration]:
    found = connections_from_domain_xml(
        domain_xml, instance_uuid=instance_uuid, address=address, vnc_tls=vnc_tls
    )
    registered = []
    for console, ports in _batches(found):
        several = len(ports) > 1
        registered.append(
            client.register_console(
                instance_uuid,
                console.host,
                None if several else ports[0],
                console.console_type,
                ports=ports if several else None,
                options=console.options,
                ttl=ttl,
            )
        )
    return registered
