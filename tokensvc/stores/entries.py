"""How a validated console is kept in a cache: ``<console_type>\\n<version>\\n<data JSON>``.

The type comes first so validate can check it without parsing the JSON. The primitive's
fixed envelope (``{"object":"ConsoleConnection","version":...,"data":...}``) is not
stored but put back around the data on a read: concatenation, no parse, and 50 bytes
less per cached token. A one-byte value is a marker (negative entry, tombstone).
"""

from __future__ import annotations

from tokensvc.stores.base import ValidConsole

NEGATIVE = b"!"
TOMBSTONE = b"~"

_HEAD = b'{"object":"ConsoleConnection","version":"'
_DATA = b'","data":'


def encode_entry(console: ValidConsole) -> bytes:
    primitive = console.connection_json
    if not (primitive.startswith(_HEAD) and primitive.endswith(b"}")):
        raise ValueError("not a compact ConsoleConnection primitive")
    version, separator, data = primitive[len(_HEAD) : -1].partition(_DATA)
    if not separator:
        raise ValueError("not a compact ConsoleConnection primitive")
    return b"\n".join((console.console_type.encode(), version, data))


def decode_entry(value: bytes) -> ValidConsole | None:
    if value in (NEGATIVE, TOMBSTONE):
        return None
    console_type, version, data = value.split(b"\n", 2)
    return ValidConsole(console_type.decode(), _HEAD + version + _DATA + data + b"}")
