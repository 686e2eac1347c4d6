"""Alembic migrations: the schema of the worker's tables."""
