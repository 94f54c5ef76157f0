"""Libvirt driver: the consoles a proxy can dial, read from a domain XML.

``<graphics type='vnc'|'spice'>`` become novnc / spice-html5 consoles and
``<serial type='tcp'>`` bind sources become serial consoles, in document order.
The XML comes from the hypervisor, so it is parsed with defusedxml and any DTD
is refused outright: a domain XML never needs one.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from tokensvc.objects.console import ConsoleConnection
from tokensvc.objects.fields import JSONScalar

# Wildcard listen addresses name no interface a proxy could dial: use the caller's.
_WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 (compared, never bound)
_GRAPHICS_CONSOLE_TYPES = {"vnc": "novnc", "spice": "spice-html5"}
# <listen> kinds that carry an IP; 'network' shows the resolved one in live XML,
# 'socket' and 'none' have nothing a TCP proxy can reach.
_ADDRESS_LISTEN_TYPES = frozenset({"address", "network"})
# ASCII digits only: int() would also take " 5900", "5_900" and non-ASCII digits.
_INTEGER = re.compile(r"-?[0-9]+")
_PORT_FIELD = ConsoleConnection.fields["port"]


class DomainXMLError(ValueError):
    """The domain XML is unsafe, malformed, or describes a console it cannot be read from."""


class _Endpoint(NamedTuple):
    host: str | None  # None or a wildcard: the caller's address is used
    port: int
    console_type: str
    options: dict[str, JSONScalar]


def connections_from_domain_xml(
    domain_xml: str | bytes, *, instance_uuid: str, address: str, vnc_tls: bool = False
) -> list[ConsoleConnection]:
    """The consoles of ``domain_xml`` as (token-less) ConsoleConnection objects.

    ``address`` replaces missing and wildcard listen addresses; ``vnc_tls`` says
    whether VNC uses TLS, which libvirt sets in qemu.conf rather than the XML.
    """
    devices = _parse_domain(domain_xml).find("devices")
    endpoints = [] if devices is None else [_endpoint(device, vnc_tls) for device in devices]
    return [
        ConsoleConnection(
            instance_uuid=instance_uuid,
            host=_dialable(found.host, address),
            port=found.port,
            console_type=found.console_type,
            options=found.options,
        )
        for found in endpoints
        if found is not None
    ]


def _dialable(host: str | None, address: str) -> str:
    return address if host is None or host in _WILDCARD_ADDRESSES else host


def _parse_domain(domain_xml: str | bytes) -> Element:
    try:
        root = fromstring(domain_xml, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise DomainXMLError(f"domain XML refused: no DTD or entity allowed ({exc})") from None
    except ParseError as exc:
        raise DomainXMLError(f"domain XML is not well-formed: {exc}") from None
    if root.tag != "domain":
        raise DomainXMLError(f"domain XML root is <{root.tag}>, expected <domain>")
    return root


def _endpoint(device: Element, vnc_tls: bool) -> _Endpoint | None:
    if device.tag == "graphics":
        return _graphics_endpoint(device, vnc_tls)
    # <console type='tcp'> only mirrors the first <serial>; reading it would duplicate it.
    if device.tag == "serial" and device.get("type") == "tcp":
        return _serial_endpoint(device)
    return None


def _graphics_endpoint(graphics: Element, vnc_tls: bool) -> _Endpoint | None:
    kind = graphics.get("type", "")
    if kind not in _GRAPHICS_CONSOLE_TYPES or (port := _port(graphics, "port")) is None:
        return None
    options: dict[str, JSONScalar] = {}
    if kind == "spice" and (tls_port := _port(graphics, "tlsPort")) is not None:
        options["tls_port"] = tls_port
    if kind == "vnc" and vnc_tls:
        options["usetls"] = True
    return _Endpoint(_graphics_listen(graphics), port, _GRAPHICS_CONSOLE_TYPES[kind], options)


def _graphics_listen(graphics: Element) -> str | None:
    if (listen := graphics.get("listen")) is not None:
        return listen
    for child in graphics.iterfind("listen"):
        if child.get("type") in _ADDRESS_LISTEN_TYPES and child.get("address") is not None:
            return child.get("address")
    return None


def _serial_endpoint(serial: Element) -> _Endpoint | None:
    source = serial.find("source")
    # A 'connect' source dials out to a listener elsewhere: there is nothing to dial here.
    if source is None or source.get("mode") != "bind":
        return None
    port = _port(serial, "service", source)
    if port is None:
        raise DomainXMLError("<serial type='tcp'> bind source has no service port")
    return _Endpoint(source.get("host"), port, "serial", {"mode": "bind"})


def _port(device: Element, attribute: str, holder: Element | None = None) -> int | None:
    """Port in ``attribute`` of ``holder`` or ``device``; None if absent or -1 (autoport)."""
    value = (device if holder is None else holder).get(attribute)
    if value is None or value == "-1":
        return None
    where = f"<{device.tag} type={device.get('type')!r}> {attribute}={value!r}"
    if not _INTEGER.fullmatch(value):
        raise DomainXMLError(f"{where} is not an integer")
    try:
        port: int = _PORT_FIELD.coerce(int(value))
    except ValueError as exc:
        raise DomainXMLError(f"{where} {exc}") from None
    return port
