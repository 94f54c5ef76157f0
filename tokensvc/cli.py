"""The ``tokensvc`` command line."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import BinaryIO

import click

from tokensvc import server
from tokensvc.auth import generate_key, hash_key
from tokensvc.cli_settings import load_settings
from tokensvc.client import Client
from tokensvc.db import schema
from tokensvc.db.engine import make_engine
from tokensvc.db.service_keys import ROLES, ServiceKeyStore
from tokensvc.drivers.libvirt import DomainXMLError
from tokensvc.errors import TokensvcError
from tokensvc.integrations.command import proxy
from tokensvc.objects.console import CONSOLE_TYPES, utcnow
from tokensvc.registration import NoConsoles, register_domain
from workers.cli import purge, scheduler, worker


# Wide enough that no command's one-line description is cut in `tokensvc --help`.
@click.group(context_settings={"max_content_width": 120})
@click.version_option(package_name="tokensvc", message="%(prog)s %(version)s")
def main() -> None:
    """Console connection token service.

    Every command reads its settings from TOKENSVC_* environment variables
    (README, "Settings"); without TOKENSVC_DATABASE_URL the database is the
    SQLite file tokensvc.db in TOKENSVC_STATE_DIR (default ~/.local/state/tokensvc).
    """


@main.group()
def db() -> None:
    """Database schema (alembic revisions)."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    engine = make_engine(load_settings().database_url)
    schema.upgrade(engine, revision)
    click.echo(f"database at {schema.current_revision(engine) or 'base'}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Downgrade the schema to REVISION (`base` removes every table)."""
    engine = make_engine(load_settings().database_url)
    schema.downgrade(engine, revision)
    click.echo(f"database at {schema.current_revision(engine) or 'base'}")


@db.command("current")
def db_current() -> None:
    """Print the schema's revision and whether it is the head."""
    engine = make_engine(load_settings().database_url)
    current, head = schema.current_revision(engine), schema.head_revision()
    state = "head" if current == head else f"head is {head}"
    click.echo(f"{current or 'base'} ({state})")


def _key_store() -> ServiceKeyStore:
    engine = make_engine(load_settings().database_url)
    schema.ensure_schema(engine)
    return ServiceKeyStore(engine)


@main.group()
def keys() -> None:
    """Service keys (shown once at creation, stored hashed)."""


@keys.command("create")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    required=True,
    help="admin, compute (needs --host) or proxy (optionally bound with --proxy-id)",
)
@click.option("--host", help="compute keys (required): the compute host they manage")
@click.option("--proxy-id", help="proxy keys (optional): bind the key to one proxy id")
@click.option("--expires-in", type=click.IntRange(min=1), help="seconds until the key expires")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object on stdout")
def keys_create(
    role: str, host: str | None, proxy_id: str | None, expires_in: int | None, as_json: bool
) -> None:
    """Create a key and show it once.

    Compute keys need --host (the compute host whose instances they manage);
    --json prints one object: id, key, role, host, proxy_id, expires_at.
    """
    if (role == "compute") != (host is not None):
        raise click.UsageError("--host is required for compute keys and only for them")
    if proxy_id is not None and role != "proxy":
        raise click.UsageError("--proxy-id is only for proxy keys")
    expires_at = utcnow() + dt.timedelta(seconds=expires_in) if expires_in else None
    secret = generate_key()
    created = _key_store().create(
        hash_key(secret), role, host=host, proxy_id=proxy_id, expires_at=expires_at
    )
    click.echo("this key is shown once: store it now", err=True)
    if as_json:
        shown = {"id": created.id, "key": secret, "role": role, "host": host, "proxy_id": proxy_id}
        click.echo(json.dumps(shown | {"expires_at": _timestamp(expires_at)}))
    else:
        click.echo(f"id:  {created.id}\nkey: {secret}")


def _timestamp(moment: dt.datetime | None) -> str | None:
    """RFC 3339 UTC with a Z, as the API writes times."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


@keys.command("list")
def keys_list() -> None:
    """List keys (never the keys themselves)."""
    now, found = utcnow(), _key_store().list()
    row = "{:<32}  {:<8} {:<24} {:<8} {}"
    click.echo(row.format("ID", "ROLE", "HOST/PROXY ID", "STATE", "EXPIRES"))
    for key in found:
        state = "revoked" if key.revoked_at else "active" if key.usable(now) else "expired"
        scope = key.host or key.proxy_id or "-"
        click.echo(
            row.format(key.id, key.role, scope, state, _timestamp(key.expires_at) or "never")
        )


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key (takes effect within KEY_CACHE_TTL seconds)."""
    if not _key_store().revoke(key_id):
        raise click.ClickException(f"no active key {key_id}")
    click.echo(f"revoked {key_id}")


@main.command()
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="serve HTTPS with this certificate (PEM; with --tls-key)",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the certificate's private key (PEM)",
)
def serve(tls_cert: Path | None, tls_key: Path | None) -> None:
    """Serve the API with a multi-worker WSGI server (granian).

    \b
    Settings (environment, see the README's "Settings"):
      TOKENSVC_BIND             address to listen on (127.0.0.1:8080)
      TOKENSVC_WORKERS          worker processes (one per core)
      TOKENSVC_THREADS          request threads per worker (4)
      TOKENSVC_MAX_CONNECTIONS  open connections per worker, idle ones too (1024)
      TOKENSVC_HEADER_TIMEOUT   seconds to send headers; keep-alive idle time (5)
      TOKENSVC_STATE_DIR        its files (~/.local/state/tokensvc, or $XDG_STATE_HOME/tokensvc)
      TOKENSVC_DATABASE_URL     mysql://... (default: SQLite, tokensvc.db in the state dir)
      TOKENSVC_REDIS_URL        the cache (unset: database only)

    On an empty key table it writes an admin key to tokensvc-admin.key in the state
    directory (0600) and prints its path.
    """
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    settings = load_settings(may_create_database=True)
    server.serve(settings, tls_cert=tls_cert, tls_key=tls_key)


@main.group()
def consoles() -> None:
    """Consoles, as a compute host registers them."""


@consoles.command("register")
@click.option("--domain-xml", required=True, type=click.File("rb"), help="libvirt domain XML")
@click.option("--instance", "instance_uuid", required=True, help="the instance UUID")
@click.option("--host", "address", required=True, help="console address for 0.0.0.0 listens")
@click.option("--service-url", required=True, help="base URL of tokensvc")
@click.option(
    "--key-file",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="file holding a compute key of the instance's host (or an admin key)",
)
@click.option(
    "--access-url",
    "access_urls",
    multiple=True,
    metavar="TYPE=URL",
    help="the URL users open for consoles of TYPE, {token} where the token goes (repeatable)",
)
@click.option("--vnc-tls", is_flag=True, help="VNC uses TLS (set in qemu.conf, not the XML)")
@click.option("--ttl", type=click.IntRange(min=1), help="token lifetime, seconds")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object per console")
def consoles_register(
    domain_xml: BinaryIO,
    instance_uuid: str,
    address: str,
    service_url: str,
    key_file: Path,
    access_urls: tuple[str, ...],
    vnc_tls: bool,
    ttl: int | None,
    as_json: bool,
) -> None:
    """Register every console of a domain.

    A console registered again gets a new token (the old one stops working).
    TCP serial ports of one address are offered together: each run hands out the
    next free one, so several users can each have a serial console.
    """
    with Client.from_key_file(service_url, key_file) as client:
        registered = register_domain(
            client,
            domain_xml.read(),
            instance_uuid=instance_uuid,
            address=address,
            vnc_tls=vnc_tls,
            ttl=ttl,
            access_urls=_access_urls(access_urls),
        )
    for done, offered in registered:
        data = done.connection
        if as_json:
            shown = {"console_type": data.console_type, "host": data.host, "port": data.port}
            shown |= {"token": done.token, "access_url": done.access_url}
            click.echo(json.dumps(shown | {"expires_at": _timestamp(done.expires_at)}))
            continue
        where = done.access_url or f"token {done.token}"
        click.echo(f"{data.console_type} {data.host}:{data.port} {where}")
        if len(offered) > 1:
            ports = ", ".join(map(str, offered))
            click.echo(f"  (the next free of ports {ports}: another run hands out another)")


def _access_urls(given: tuple[str, ...]) -> dict[str, str]:
    urls = {}
    for item in given:
        console_type, sep, url = item.partition("=")
        if not sep or console_type not in CONSOLE_TYPES or not url:
            raise click.BadParameter(
                f"expected TYPE=URL with TYPE one of {', '.join(CONSOLE_TYPES)}, got {item!r}",
                param_hint="--access-url",
            )
        urls[console_type] = url
    return urls


# The expiry commands live with the workers, the proxy's with the proxy; `tokensvc`
# carries them all.
for _command in (worker, scheduler, purge, proxy):
    main.add_command(_command)


def run() -> None:
    """Entry point that turns service errors into one line instead of a traceback."""
    try:
        main(standalone_mode=True)
    except TokensvcError as exc:
        click.echo(f"tokensvc: {exc.detail}", err=True)
        sys.exit(1)
    except (DomainXMLError, NoConsoles) as exc:
        click.echo(f"tokensvc: {exc}", err=True)
        sys.exit(1)
