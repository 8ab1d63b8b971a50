"""Stores: SQLAlchemy models, repositories and migrations."""
