"""`tokensvc proxy`'s command line: the options, checked, become ProxyOptions."""

from __future__ import annotations

import socket
from pathlib import Path

import click

from tokensvc.integrations.options import ProxyOptions
from tokensvc.networks import parse_networks
from tokensvc.objects.console import CONSOLE_TYPES


@click.command()
@click.option("--listen", required=True, help="HOST:PORT to accept websocket clients on")
@click.option("--service-url", required=True, help="base URL of tokensvc")
@click.option(
    "--key-file",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="file holding a proxy key (keep it 0600)",
)
@click.option("--proxy-id", help="default: <hostname>:<listen port>, stable across restarts")
@click.option(
    "--console-type",
    type=click.Choice(CONSOLE_TYPES),
    help="refuse tokens of other console types (4001); default: any",
)
@click.option(
    "--allowed-origin",
    "allowed_origins",
    multiple=True,
    help="a websocket Origin to accept (repeatable); default: any",
)
@click.option(
    "--allow-console-network",
    "console_networks",
    multiple=True,
    metavar="CIDR",
    help="dial consoles there although loopback, link-local, unspecified or multicast "
    "(repeatable); default: none of those",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    help="open client connections at most, more are refused at once; default: "
    "256 per core, fewer if the open-file limit cannot carry 3 files each",
)
@click.option(
    "--invalid-token-limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="invalid tokens one user address may present per 10 s before it gets 4029 "
    "without the service being asked (0: no limit)",
)
@click.option(
    "--handshake-timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="seconds from accept until the websocket request (TLS included) is in",
)
@click.option(
    "--web",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="serve static files (noVNC) from this directory; default: websocket upgrades only",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="serve wss with this certificate (PEM; with --tls-key)",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the certificate's private key (PEM)",
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the CA (PEM) that signs tokensvc's certificate; default: the system's",
)
def proxy(
    listen: str,
    service_url: str,
    key_file: Path,
    proxy_id: str | None,
    console_type: str | None,
    allowed_origins: tuple[str, ...],
    console_networks: tuple[str, ...],
    max_connections: int | None,
    invalid_token_limit: int,
    handshake_timeout: float,
    web: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    ca_file: Path | None,
) -> None:
    """Console proxy (websockify): validates tokens, holds leases.

    It tracks who is on which console and relays until the session ends.
    """
    from tokensvc.integrations import proxy as console_proxy

    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter("expected HOST:PORT", param_hint="--listen")
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    try:
        allowed_networks = parse_networks(console_networks)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--allow-console-network") from None
    options = ProxyOptions(
        listen_host=host.strip("[]"),
        listen_port=int(port),
        service_url=service_url,
        key_file=key_file,
        proxy_id=proxy_id or f"{socket.gethostname()}:{port}",
        console_type=console_type,
        allowed_origins=allowed_origins,
        web=web,
        tls_cert=tls_cert,
        tls_key=tls_key,
        ca_file=ca_file,
        allowed_networks=allowed_networks,
        max_connections=max_connections,
        handshake_timeout=handshake_timeout,
        invalid_token_limit=invalid_token_limit,
    )
    console_proxy.run(options)


# The expiry commands live with the workers; `tokensvc` carries them all.
