"""Alembic migrations, installed as ``tokensvc.migrations``."""
