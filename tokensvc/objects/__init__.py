"""Versioned objects: the only shapes that cross process boundaries."""

from tokensvc.objects.base import VersionedObject
from tokensvc.objects.console import CONSOLE_TYPES, ConsoleConnection
from tokensvc.objects.instance import Instance
from tokensvc.objects.lease import CLOSE_REASONS, ConsoleLease

__all__ = [
    "CLOSE_REASONS",
    "CONSOLE_TYPES",
    "ConsoleConnection",
    "ConsoleLease",
    "Instance",
    "VersionedObject",
]
