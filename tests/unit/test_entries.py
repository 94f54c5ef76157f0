"""Cache entries: compact in the cache, the exact primitive back out."""

from __future__ import annotations

import json

import pytest
from hypothesis import given

from tests.unit.test_objects import connections
from tokensvc.objects.console import ConsoleConnection
from tokensvc.stores.base import ValidConsole
from tokensvc.stores.entries import NEGATIVE, TOMBSTONE, decode_entry, encode_entry
from tokensvc.stores.rows import valid_console


@given(connections)
def test_an_entry_gives_back_the_primitive_byte_for_byte(connection: ConsoleConnection) -> None:
    console = valid_console(connection)
    entry = encode_entry(console)
    assert decode_entry(entry) == console
    # The envelope is not stored: only the type, the version and the data.
    primitive = json.loads(console.connection_json)
    data = json.dumps(primitive["data"], separators=(",", ":")).encode()
    assert entry.split(b"\n", 2) == [connection.console_type.encode(), b"1.2", data]


def test_markers_are_no_console() -> None:
    assert decode_entry(NEGATIVE) is None and decode_entry(TOMBSTONE) is None


@pytest.mark.parametrize(
    "connection_json", [b"{}", b'{"object":"Instance","version":"1.0","data":{}}', b"[]"]
)
def test_anything_but_a_console_primitive_is_refused(connection_json: bytes) -> None:
    with pytest.raises(ValueError, match="not a compact ConsoleConnection primitive"):
        encode_entry(ValidConsole("novnc", connection_json))
