"""The central hub: takes the stores' aggregates; shares only the wire protocol with ``sync/``.

Where things are:

- ``db.py``: the engine (SQLite by default, PostgreSQL in production) and
  :func:`~cloud_hub.db.migrate` (Alembic scripts in ``migrations/``, shipped in the wheel);
- ``schema.py``: every table (SQLAlchemy Core); ``partitions.py``: PostgreSQL's monthly
  partitions of the 5-minute facts;
- ``registry.py``: regions, stores, their secrets and rotation;
- ``ingest.py``: one batch applied in one transaction (idempotent by batch id, replay
  detection, upserts by revision, hourly/daily rollups and the ledger kept on ingest);
- ``app.py``: the HTTP API (``POST /api/v1/batches``, ``GET /healthz``); ``serve.py``:
  waitress; ``cli.py``: ``footfall hub init|serve|store …``.

To come (issue 13's next slices), beside these: the managers' dashboard (its own
templates, accounts with roles, read from the rollups and ``ledger_hours``, never the
5-minute rows for long ranges), multi-store comparison, POS import, downlink items in
the answer (:mod:`wire.answer`), and ``footfall bench hub``.
"""
