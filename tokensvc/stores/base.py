"""The store interface the objects and the API talk to.

The database store implements it; the Redis cache-aside store wraps the
database store and implements it too, so callers never know which they have.
Methods that revoke tokens return the revoked hashes, which the database store
has also written to the ``invalidations`` outbox in the same transaction.

What only the database backend can do is a :class:`Capability`: a store says which
it has, and :func:`require_capability` is the one place that answers 501 for the
rest (routes declare the capability they need; the scheduler and ``tokensvc purge``
ask the same table). Listing and purging are a protocol of their own,
:class:`ConsoleRecords`, which the deprecated memcached store does not implement.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from tokensvc.config import Settings
from tokensvc.errors import UnsupportedInBackend
from tokensvc.objects.console import Authorize, ConsoleConnection
from tokensvc.objects.instance import Instance

# What validate leaves out: connect is the authority on who holds the port.
VALIDATE_EXCLUDES = ("token_hash", "connected", "lease")


class PurgeResult(NamedTuple):
    deleted: int
    batches: int


class InstanceWrite(NamedTuple):
    created: bool
    revoked: list[str]  # token hashes revoked because the instance moved


class ValidConsole(NamedTuple):
    """A live console as validate answers it: its type and its primitive as JSON."""

    console_type: str
    connection_json: bytes


class Capability(enum.Enum):
    """What the deprecated memcached backend cannot do (the value words it for a 501)."""

    RECORDS = "listing and purging consoles"
    LEASES = "console leases"
    PORT_CHOICE = "choosing the next free port or forcing a port"


EVERY_CAPABILITY = frozenset(Capability)
# CONSOLE_TOKENS_BACKEND -> what its store can do: the one table of it.
BACKEND_CAPABILITIES: Mapping[str, frozenset[Capability]] = {
    "database": EVERY_CAPABILITY,
    "memcached": frozenset(),
}


def backend_capabilities(settings: Settings) -> frozenset[Capability]:
    """What the configured backend's store will be able to do (before building it)."""
    return BACKEND_CAPABILITIES[settings.console_tokens_backend]


def require_capability(capabilities: frozenset[Capability], needed: Capability) -> None:
    """501 unsupported-in-backend unless the backend can do ``needed``."""
    if needed not in capabilities:
        raise UnsupportedInBackend(
            f"{needed.value} needs the database backend (memcached is deprecated)"
        )


class TokenStore(Protocol):
    capabilities: frozenset[Capability]

    def put_instance(self, instance: Instance) -> InstanceWrite:
        """Create or update. Moving to another compute host revokes its consoles."""

    def get_instance(self, uuid: str) -> Instance:
        """The instance, or :class:`~tokensvc.errors.NotFound`."""

    def delete_instance(self, uuid: str) -> list[str]:
        """Delete with its consoles (NotFound if unknown); the revoked hashes."""

    def save_console(
        self,
        connection: ConsoleConnection,
        *,
        ports: Sequence[int] = (),
        force: bool = False,
        authorize: Authorize | None = None,
    ) -> str | None:
        """Insert, or replace the token of the same (instance, host, port): the old hash.

        With ``ports``, the port is chosen first (a free one; PortsExhausted if none).
        A port with a live lease is AlreadyConnected unless ``force``. ``authorize``
        gets the instance's compute host, read in the same transaction, and raises to
        refuse (one read fewer than checking before the write).
        """

    def lookup(self, token_hash: str) -> ValidConsole | None:
        """The hot path: the live (unexpired) console of a token hash, or None."""

    def get_by_token_hash(self, token_hash: str) -> ConsoleConnection | None:
        """The console holding this token hash, expired or not."""

    def revoke_token(self, token_hash: str) -> bool:
        """Delete the console of this token; False if there was none."""

    def revoke_all(self, instance_uuid: str) -> list[str]:
        """Delete every console of the instance; the revoked hashes."""


@runtime_checkable
class ConsoleRecords(TokenStore, Protocol):
    """A store that can also list and purge its consoles (Capability.RECORDS)."""

    def list_by_instance(self, instance_uuid: str) -> list[ConsoleConnection]:
        """Every console of the instance, or NotFound for an unknown instance."""

    def purge_expired(
        self,
        compute_host: str,
        batch_size: int,
        on_batch: Callable[[list[str]], None] = ...,
    ) -> PurgeResult:
        """Delete expired consoles of one compute host, ``batch_size`` rows a transaction;
        ``on_batch`` is called with the token hashes of each committed batch."""


def console_records(store: TokenStore) -> ConsoleRecords:
    """The store as one that lists and purges (501 if its backend cannot)."""
    require_capability(store.capabilities, Capability.RECORDS)
    assert isinstance(store, ConsoleRecords)
    return store
