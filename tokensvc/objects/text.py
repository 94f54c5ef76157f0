"""Text fields with a shape: ids, console addresses and access URLs.

Each is a :class:`StringField` whose pattern Python and JSON Schema read alike,
so what the service refuses is what ``/openapi.json`` says it refuses.
Control characters (C0, DEL, C1; NUL among them) never belong in an id or an
address: they break log lines, SQL collations and the proxy's own dialling.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

from tokensvc.objects.fields import StringField

# Not a control character: the class both regex dialects read the same way.
_NOT_CONTROL = r"[^\u0000-\u001f\u007f-\u009f]"
# Not a control character or a space: what a URL may contain ({token} included).
_URL_CHAR = r"[^\u0000-\u0020\u007f-\u009f]"
_URL = rf"[Hh][Tt][Tt][Pp][Ss]?://[^\u0000-\u0020\u007f-\u009f/?#]+(?:[/?#]{_URL_CHAR}*)?"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_SCOPE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # an IPv6 zone such as eth0
MAX_HOST_NAME = 253  # RFC 1035: 253 characters without the trailing dot
_HOST_REASON = "must be an IP address or an RFC 1123 host name (letters, digits, hyphens, dots)"


def name_field(*, max_length: int = 255, nullable: bool = False) -> StringField:
    """An id (compute host, proxy id, client): any text without control characters."""
    return StringField(
        max_length=max_length,
        pattern=f"{_NOT_CONTROL}*",
        reason="must not contain control characters",
        nullable=nullable,
    )


def url_field(*, max_length: int = 255, nullable: bool = False) -> StringField:
    """An absolute http:// or https:// URL without spaces or control characters."""
    return StringField(
        max_length=max_length,
        pattern=_URL,
        reason="must be an absolute http:// or https:// URL without spaces",
        nullable=nullable,
    )


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` spells in standard notation, or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class HostField(StringField):
    """Where a proxy dials: an IP address or an RFC 1123 host name.

    IPv4 in another notation than dotted decimal (``127.1``, ``0x7f000001``,
    ``2130706433``, leading zeros) is refused: the C resolver reads it as an
    address that a check of the literal text would miss.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=MAX_HOST_NAME + 1, reason=_HOST_REASON, **kwargs)

    def _coerce(self, value: Any) -> str:
        host: str = super()._coerce(value)
        address = ip_literal(host)
        if address is not None:
            scope = getattr(address, "scope_id", None)
            if scope is not None and not _SCOPE.fullmatch(scope):
                raise ValueError("must name an IPv6 zone of letters, digits, '_', '.', '-'")
            return host
        if not _HOST_NAME.fullmatch(host) or len(host.rstrip(".")) > MAX_HOST_NAME:
            raise ValueError(self.reason)
        if _resolver_reads_as_ipv4(host):
            raise ValueError("must write an IPv4 address in dotted decimal (a.b.c.d)")
        return host

    def describe(self) -> str:
        return f"{type(self).__name__}(nullable={self.nullable}, read_only={self.read_only})"

    def _json_schema(self) -> dict[str, Any]:
        options = [{"format": "ipv4"}, {"format": "ipv6"}, {"format": "hostname"}]
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": self.max_length,
            "anyOf": [{"type": "string"} | option for option in options],
            "description": "an IP address or an RFC 1123 host name",
        }


def _resolver_reads_as_ipv4(name: str) -> bool:
    try:
        socket.inet_aton(name)
    except OSError:
        return False
    return True
