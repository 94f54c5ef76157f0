"""Settings for a command: the one place that turns a bad setting into one line.

Shared by ``tokensvc`` (tokensvc/cli.py) and the worker commands (workers/cli.py),
which tokensvc/cli.py imports: here, so that neither imports the other back.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from tokensvc.config import ConfigError, Settings, require_existing_database


def config_error(exc: ConfigError) -> NoReturn:
    """End the command with one line naming the setting, not a traceback."""
    click.echo(f"tokensvc: configuration error: {exc}", err=True)
    sys.exit(2)


def load_settings(*, may_create_database: bool = False) -> Settings:
    """Settings from the environment; a bad value ends the command with one line."""
    try:
        settings = Settings.from_env()
        if not may_create_database:
            require_existing_database(settings)
    except ConfigError as exc:
        config_error(exc)
    return settings
