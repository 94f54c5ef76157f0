"""Static driver: a console whose fields the caller already knows."""

from __future__ import annotations

from collections.abc import Mapping

from tokensvc.objects.console import ConsoleConnection
from tokensvc.objects.fields import JSONScalar


def static_connection(
    *,
    instance_uuid: str,
    host: str,
    port: int,
    console_type: str,
    access_url: str | None = None,
    options: Mapping[str, JSONScalar] | None = None,
) -> ConsoleConnection:
    """The validated (token-less) console; ValidationFailed names every bad field."""
    return ConsoleConnection(
        instance_uuid=instance_uuid,
        host=host,
        port=port,
        console_type=console_type,
        access_url=access_url,
        options=dict(options or {}),
    )
