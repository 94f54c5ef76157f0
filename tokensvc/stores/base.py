"""The store interface the objects talk to; caches wrap it, the database implements it."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from tokensvc.objects.console import ConsoleConnection
from tokensvc.objects.instance import Instance


class PurgeResult(NamedTuple):
    deleted: int
    batches: int


class TokenStore(Protocol):
    def put_instance(self, instance: Instance) -> bool:
        """Create or update; True when created. Moving to another host revokes its consoles."""

    def get_instance(self, uuid: str) -> Instance:
        """The instance, or :class:`~tokensvc.errors.NotFound`."""

    def delete_instance(self, uuid: str) -> None:
        """Delete with its consoles, or :class:`~tokensvc.errors.NotFound`."""

    def save_console(self, connection: ConsoleConnection) -> None:
        """Insert, or replace the token of the same (instance, host, port)."""

    def get_by_token_hash(self, token_hash: str) -> ConsoleConnection | None:
        """The console holding this token hash, expired or not."""

    def list_by_instance(self, instance_uuid: str) -> list[ConsoleConnection]:
        """Every console of the instance, or NotFound for an unknown instance."""

    def rotate_token(self, old_hash: str, connection: ConsoleConnection) -> bool:
        """Swap ``old_hash`` for the connection's new hash and expiry; False if gone."""

    def revoke_token(self, token_hash: str) -> bool:
        """Delete the console of this token; False if there was none."""

    def revoke_all(self, instance_uuid: str) -> int:
        """Delete every console of the instance; how many."""

    def purge_expired(self, compute_host: str, batch_size: int) -> PurgeResult:
        """Delete expired consoles of one compute host, ``batch_size`` rows a transaction."""
