"""The websockify token plugin's start-up errors: one line each, no traceback."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.consoles import _WEBSOCKIFY
from tests.support import free_port

PLUGIN = "tokensvc.integrations.websockify.TokenPlugin"


def start_with(source: str) -> subprocess.CompletedProcess[str]:
    command = [_WEBSOCKIFY, "--token-plugin", PLUGIN, "--token-source", source]
    command.append(f"127.0.0.1:{free_port()}")
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("http://127.0.0.1:8080,{missing}", "tokensvc plugin: cannot read the key file {missing}"),
        ("http://127.0.0.1:8080,{empty}", "tokensvc plugin: the key file {empty} is empty"),
        ("http://127.0.0.1:8080", "tokensvc plugin: --token-source must be 'URL,KEYFILE'"),
    ],
)
def test_a_bad_token_source_stops_websockify_with_one_line(tmp_path, source, message):
    paths = {"missing": tmp_path / "no-such.key", "empty": tmp_path / "empty.key"}
    paths["empty"].write_text("\n")
    started = start_with(source.format(**paths))
    assert started.returncode == 1
    assert len(started.stderr.strip().splitlines()) == 1, started.stderr
    assert started.stderr.startswith(message.format(**paths))
