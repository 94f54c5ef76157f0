"""How a validated console is kept in a cache: ``<console_type>\\n<primitive JSON>``.

The type comes first so validate can check it without parsing the JSON, and the
JSON goes out as it is. A one-byte value is a marker (negative entry, tombstone).
"""

from __future__ import annotations

from tokensvc.stores.base import ValidConsole

NEGATIVE = b"!"
TOMBSTONE = b"~"


def encode_entry(console: ValidConsole) -> bytes:
    return console.console_type.encode() + b"\n" + console.connection_json


def decode_entry(value: bytes) -> ValidConsole | None:
    if value in (NEGATIVE, TOMBSTONE):
        return None
    console_type, _, connection_json = value.partition(b"\n")
    return ValidConsole(console_type.decode(), connection_json)
