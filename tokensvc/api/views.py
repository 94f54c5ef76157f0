"""Helpers the views share: path parameters, scope checks, object rendering."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from tokensvc.api.routing import Call
from tokensvc.errors import NotFound, ValidationFailed
from tokensvc.objects.console import ConsoleConnection
from tokensvc.objects.fields import UUIDField
from tokensvc.objects.instance import Instance
from tokensvc.service_key import ServiceKey

_UUID = UUIDField()
# Never in an API answer: the hash is as good as the token to an offline attacker's index.
HIDDEN = ("token_hash",)


def path_uuid(value: str) -> str:
    try:
        coerced: str = _UUID.coerce(value)
    except ValueError as exc:
        raise ValidationFailed({"uuid": str(exc)}) from None
    return coerced


def path_host(value: str) -> str:
    """A compute host name from a path: the same rule as an instance's ``host``."""
    try:
        coerced: str = Instance.fields["host"].coerce(value)
    except ValueError as exc:
        raise ValidationFailed({"host": str(exc)}) from None
    return coerced


def managed_instance(call: Call, uuid: str) -> Instance:
    """The instance, if the caller may manage it (404 otherwise)."""
    instance = call.services.store.get_instance(path_uuid(uuid))
    assert call.key is not None
    require_own_instance(call.key, instance.uuid, instance.host)
    return instance


def require_own_instance(key: ServiceKey, uuid: str, compute_host: str) -> None:
    """A compute key gets another host's instance answered as a missing one.

    The same status, type and detail as the store's, so that no compute key can
    probe which instance ids exist on other hosts.
    """
    if key.role == "compute" and key.host != compute_host:
        raise NotFound(f"instance {uuid} not found")


def render_connection(call: Call, connection: ConsoleConnection) -> dict[str, Any]:
    return connection.to_primitive(call.object_version, exclude=HIDDEN)


def access_url_with_token(access_url: str | None, token: str) -> str | None:
    """Put the token into the URL: at ``{token}`` if present, else as ``token=``."""
    if access_url is None:
        return None
    if "{token}" in access_url:
        return access_url.replace("{token}", quote(token, safe=""))
    parts = urlsplit(access_url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), ("token", token)])
    return urlunsplit(parts._replace(query=query))
