"""Versioned objects: the only shapes that cross process boundaries."""

from tokensvc.objects.base import VersionedObject
from tokensvc.objects.console import CONSOLE_TYPES, ConsoleConnection
from tokensvc.objects.instance import Instance

__all__ = ["CONSOLE_TYPES", "ConsoleConnection", "Instance", "VersionedObject"]
