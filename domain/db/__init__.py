"""Persistence: SQLAlchemy 2 models, repositories and the per-update unit of work.

Repositories never commit; the use case (a domain service) does, through
:class:`UnitOfWork`. Works on SQLite (embedded default) and PostgreSQL.
"""
