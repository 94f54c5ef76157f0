"""How `tokensvc proxy` resolves, checks and dials a console address."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tokensvc.cli import main
from tokensvc.integrations.dialer import ConsoleRefused, ConsoleUnreachable, dial, resolve
from tokensvc.networks import parse_networks

LOOPBACK = parse_networks(["127.0.0.0/8"])


def answers(monkeypatch: pytest.MonkeyPatch, *rounds: list[str]) -> list[str]:
    """getaddrinfo answers one round of addresses per call; returns the names asked."""
    asked: list[str] = []

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        addresses = rounds[min(len(asked), len(rounds)) - 1]
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_every_address_a_name_resolves_to_is_checked(monkeypatch):
    answers(monkeypatch, ["192.0.2.10", "127.0.0.1"])
    with pytest.raises(ConsoleRefused, match=r"127\.0\.0\.1 is a loopback address"):
        resolve("console.test", 5900, ())
    assert [info[4][0] for info in resolve("console.test", 5900, LOOPBACK)] == [
        "192.0.2.10",
        "127.0.0.1",
    ]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "link-local"),
        ("fe80::1%1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::1", "loopback"),
    ],
)
def test_refused_kinds_of_address(monkeypatch, address, kind):
    answers(monkeypatch, [address])
    with pytest.raises(ConsoleRefused, match=kind):
        resolve("console.test", 5900, LOOPBACK if kind != "loopback" else ())


def test_the_proxy_dials_the_checked_address_not_the_name_again(monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        # A second answer would point elsewhere: it must never be asked for.
        asked = answers(monkeypatch, ["127.0.0.1"], ["127.0.0.2"])
        with dial("console.test", port, parse_networks(["127.0.0.1/32"]), 2.0) as sock:
            accepted, _ = listener.accept()
            accepted.close()
            assert sock.getpeername() == ("127.0.0.1", port)
    assert asked == ["console.test"]


@pytest.mark.parametrize("host", ["a" * 64 + ".example", "\ud800", "bad\x00host"])
def test_a_name_that_cannot_be_encoded_or_resolved_is_unreachable(host):
    with pytest.raises(ConsoleUnreachable):
        dial(host, 5900, (), 1.0)


def test_a_bad_console_network_is_a_one_line_usage_error(tmp_path: Path):
    key = tmp_path / "proxy.key"
    key.write_text("key\n")
    args = ["proxy", "--listen", "127.0.0.1:0", "--service-url", "http://127.0.0.1:1"]
    args += ["--key-file", str(key), "--allow-console-network", "10.0.0.0/33"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "--allow-console-network" in result.output
    assert "not a network in CIDR notation: '10.0.0.0/33'" in result.output
