"""The ConsoleConnection object: one console of one instance, and its token."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from tokensvc import tokens
from tokensvc.errors import InvalidToken
from tokensvc.objects.base import Relationships, VersionedObject, version_tuple
from tokensvc.objects.fields import (
    BooleanField,
    DateTimeField,
    EnumField,
    Field,
    HexField,
    IntegerField,
    JSONScalar,
    ObjectField,
    ScalarDictField,
    UUIDField,
)
from tokensvc.objects.text import HostField, url_field

if TYPE_CHECKING:
    from tokensvc.objects.lease import ConsoleLease
    from tokensvc.stores.base import Authorize, PurgeResult, TokenStore

CONSOLE_TYPES = ("novnc", "spice-html5", "serial", "mks", "rdp", "webmks")
# What a caller must give to register a console (the rest is derived or optional).
REGISTER_FIELDS = ("instance_uuid", "host", "port", "console_type")


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
    def create(
        self,
        store: TokenStore,
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

    def rotate(self, store: TokenStore, ttl: int) -> str:
        """Replace this console's token; the old one stops validating."""
        old_hash = self.token_hash
        if old_hash is None:
            raise InvalidToken()
        token = self._new_token(ttl)
        if not store.rotate_token(old_hash, self):
            raise InvalidToken()
        return token

    def destroy(self, store: TokenStore) -> None:
        if self.token_hash is None or not store.revoke_token(self.token_hash):
            raise InvalidToken()

    def is_expired(self, now: dt.datetime | None = None) -> bool:
        return self.expires is not None and self.expires <= (now or utcnow())

    def _new_token(self, ttl: int) -> str:
        token = tokens.generate_token()
        self.token_hash = tokens.hash_token(token)
        self.expires = utcnow() + dt.timedelta(seconds=ttl)
        return token

    @classmethod
    def get_by_token(cls, store: TokenStore, token: str) -> ConsoleConnection:
        """The live console of ``token``; unknown, expired and malformed alike fail."""
        if not tokens.is_well_formed(token):
            raise InvalidToken()
        found = store.get_by_token_hash(tokens.hash_token(token))
        if found is None or found.is_expired():
            raise InvalidToken()
        return found

    @classmethod
    def list_by_instance(cls, store: TokenStore, instance_uuid: str) -> list[ConsoleConnection]:
        return store.list_by_instance(instance_uuid)

    @classmethod
    def purge_expired(cls, store: TokenStore, compute_host: str, batch_size: int) -> PurgeResult:
        return store.purge_expired(compute_host, batch_size)
