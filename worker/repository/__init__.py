"""Persistence: SQLAlchemy records, repositories and the unit of work."""
