"""The hub's Alembic migrations (run by :func:`cloud_hub.db.migrate`; no ``alembic.ini``)."""
