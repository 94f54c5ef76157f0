"""Relational storage: SQLAlchemy models, engines and the alembic schema."""
