"""Alembic's environment: migrate on the connection :func:`cloud_hub.db.migrate` hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the hub's migrations through cloud_hub.db.migrate(engine)")
context.configure(connection=connection, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
