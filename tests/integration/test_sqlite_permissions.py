"""The SQLite file holds key and token hashes: only its owner may read it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tokensvc.db import schema
from tokensvc.db.engine import make_engine


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # what sqlite3 alone would turn into 0644 files
    try:
        yield
    finally:
        os.umask(previous)


def modes(directory: Path) -> dict[str, int]:
    """The database's files (not the empty migration lock file beside them)."""
    return {
        path.name: stat.S_IMODE(path.stat().st_mode)
        for path in directory.glob("tokensvc.db*")
        if not path.name.endswith(".lock")
    }


def test_a_new_database_and_its_wal_files_are_0600(tmp_path, permissive_umask):
    engine = make_engine(f"sqlite:///{tmp_path / 'tokensvc.db'}")
    schema.ensure_schema(engine)
    with engine.connect() as conn:  # while a connection is open its -wal and -shm exist
        conn.execute(text("SELECT 1"))
        found = modes(tmp_path)
    engine.dispose()
    assert {"tokensvc.db", "tokensvc.db-wal", "tokensvc.db-shm"} <= found.keys()
    assert set(found.values()) == {0o600}, found


def test_an_existing_file_keeps_its_mode(tmp_path, permissive_umask):
    path = tmp_path / "tokensvc.db"
    path.touch(0o640)
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_in_memory_databases_create_no_file(tmp_path, permissive_umask, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = make_engine("sqlite://")
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert list(tmp_path.iterdir()) == []
