"""The ``tokensvc`` command line."""

from __future__ import annotations

import sys

import click

from tokensvc.config import ConfigError, Settings
from tokensvc.db import schema
from tokensvc.db.engine import make_engine
from tokensvc.errors import TokensvcError


def load_settings() -> Settings:
    """Settings from the environment; a bad value ends the command with one line."""
    try:
        return Settings.from_env()
    except ConfigError as exc:
        click.echo(f"tokensvc: configuration error: {exc}", err=True)
        sys.exit(2)


@click.group()
def main() -> None:
    """Console connection token service."""


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


def run() -> None:
    """Entry point that turns service errors into one line instead of a traceback."""
    try:
        main(standalone_mode=True)
    except TokensvcError as exc:
        click.echo(f"tokensvc: {exc.detail}", err=True)
        sys.exit(1)
