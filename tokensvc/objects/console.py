"""The ConsoleConnection object: one console of one instance, and its token."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from tokensvc import tokens
from tokensvc.objects.base import ObjectField, Relationships, VersionedObject, version_tuple
from tokensvc.objects.fields import (
    BooleanField,
    DateTimeField,
    EnumField,
    Field,
    HexField,
    IntegerField,
    JSONScalar,
    ScalarDictField,
    UUIDField,
)
from tokensvc.objects.text import HostField, url_field

if TYPE_CHECKING:
    from tokensvc.objects.lease import ConsoleLease

CONSOLE_TYPES = ("novnc", "spice-html5", "serial", "mks", "rdp", "webmks")
# What a caller must give to register a console (the rest is derived or optional).
REGISTER_FIELDS = ("instance_uuid", "host", "port", "console_type")


# Refuses (raises) a write on an instance of the given compute host.
Authorize = Callable[[str], None]


class SavesConsoles(Protocol):
    """What :meth:`ConsoleConnection.create` needs of a store (every TokenStore of
    tokensvc/stores/base.py is one): declared here, so that the objects do not import
    the stores that import them."""

    def save_console(
        self,
        connection: ConsoleConnection,
        *,
        ports: Sequence[int] = (),
        force: bool = False,
        authorize: Authorize | None = None,
    ) -> str | None: ...


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class ConsoleConnection(VersionedObject):
    # Version 1.0: instance_uuid, host, port, token_hash, access_url, options, expires
    # Version 1.1: added console_type and the read-only connected
    # Version 1.2: added the read-only lease (who holds the port)
    VERSION = "1.2"
    VERSIONS: ClassVar[tuple[str, ...]] = ("1.0", "1.1", "1.2")

    fields: ClassVar[dict[str, Field]] = {
        "instance_uuid": UUIDField(),
        "host": HostField(),
        "port": IntegerField(minimum=1, maximum=65535),
        "token_hash": HexField(length=64, nullable=True),
        "access_url": url_field(nullable=True),
        "options": ScalarDictField(max_bytes=4096),
        "expires": DateTimeField(nullable=True),
        "console_type": EnumField(CONSOLE_TYPES),
        "connected": BooleanField(read_only=True),
        "lease": ObjectField("ConsoleLease", nullable=True, read_only=True),
    }
    # Which ConsoleLease each version carries; older versions have no lease.
    obj_relationships: ClassVar[Relationships] = {"lease": (("1.2", "1.0"),)}

    instance_uuid: str
    host: str
    port: int
    token_hash: str | None
    access_url: str | None
    options: dict[str, JSONScalar]
    expires: dt.datetime | None
    console_type: str
    connected: bool
    lease: ConsoleLease | None

    def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
        # lease (1.2) is left out of older versions by obj_relationships.
        if version_tuple(target_version) < (1, 1):
            primitive.pop("console_type", None)
            primitive.pop("connected", None)

    # -- methods that make the object useful -----------------------------------
    # (Reads, rotation and revocation are the store's: tokensvc/stores/base.py. The
    # API's validate is the one path that turns a token into a live console.)
    def create(
        self,
        store: SavesConsoles,
        ttl: int,
        *,
        ports: Sequence[int] = (),
        force: bool = False,
        authorize: Authorize | None = None,
    ) -> str:
        """Persist with a fresh token; the clear token is returned once, never stored.

        With ``ports`` the store picks the port (the next free one) and sets it here.
        """
        if ports:
            self.port = ports[0]  # a placeholder the store replaces with its choice
        self.obj_require(REGISTER_FIELDS)
        if not self.obj_attr_is_set("options"):
            self.options = {}
        if not self.obj_attr_is_set("access_url"):
            self.access_url = None
        token = self._new_token(ttl)
        store.save_console(self, ports=ports, force=force, authorize=authorize)
        return token

    def is_expired(self, now: dt.datetime | None = None) -> bool:
        return self.expires is not None and self.expires <= (now or utcnow())

    def _new_token(self, ttl: int) -> str:
        token = tokens.generate_token()
        self.token_hash = tokens.hash_token(token)
        self.expires = utcnow() + dt.timedelta(seconds=ttl)
        return token
