"""The store interface the objects and the API talk to.

The database store implements it; the Redis cache-aside store wraps the
database store and implements it too, so callers never know which they have.
Methods that revoke tokens return the revoked hashes, which the database store
has also written to the ``invalidations`` outbox in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from tokensvc.objects.console import ConsoleConnection
from tokensvc.objects.instance import Instance

# Refuses (raises) a write on an instance of the given compute host.
Authorize = Callable[[str], None]

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


class TokenStore(Protocol):
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

    def list_by_instance(self, instance_uuid: str) -> list[ConsoleConnection]:
        """Every console of the instance, or NotFound for an unknown instance."""

    def rotate_token(self, old_hash: str, connection: ConsoleConnection) -> bool:
        """Swap ``old_hash`` for the connection's new hash and expiry; False if gone."""

    def revoke_token(self, token_hash: str) -> bool:
        """Delete the console of this token; False if there was none."""

    def revoke_all(self, instance_uuid: str) -> list[str]:
        """Delete every console of the instance; the revoked hashes."""

    def purge_expired(
        self,
        compute_host: str,
        batch_size: int,
        on_batch: Callable[[list[str]], None] = ...,
    ) -> PurgeResult:
        """Delete expired consoles of one compute host, ``batch_size`` rows a transaction;
        ``on_batch`` is called with the token hashes of each committed batch."""
