"""The central hub: takes the stores' aggregates; shares only the wire protocol with ``sync/``.

Where things are:

- ``db.py``: the engine (SQLite by default, PostgreSQL in production) and
  :func:`~cloud_hub.db.migrate` (Alembic scripts in ``migrations/``, shipped in the wheel);
- ``schema.py``: every table (SQLAlchemy Core); ``partitions.py``: PostgreSQL's monthly
  partitions of the 5-minute facts;
- ``registry.py``: regions, stores, their secrets and rotation;
- ``ingest.py``: one batch applied in one transaction (idempotent by batch id, replay
  detection, upserts by revision, hourly/daily rollups and the ledger kept on ingest);
- ``app.py``: the HTTP API (``POST /api/v1/batches``, ``POST /api/v1/pos``,
  ``GET /healthz``) and, on the same app, the managers' dashboard; ``serve.py``:
  waitress; ``cli.py``: ``footfall hub init|serve|store …|user add|pos import``;
- the dashboard: ``accounts.py`` (users, roles admin | manager | viewer and the one
  scoping rule, server-side sessions, the one-time setup token), ``ledger.py`` (the
  completeness ledger per store-day from ``ledger_hours``), ``compare.py`` (sums per
  store-day from the daily rollups and ``pos_hours``, per m², per opening hour, against
  the region, last week and last year), ``tables.py`` (each table as display strings,
  so a page and its CSV show the same numbers), ``pos.py`` (POS hours from CSV or the
  signed API), ``dashboard.py`` (the pages; ``templates/``, ``static/`` with vendored
  htmx), ``downlink.py`` (each room's items for a box, signed into every answer).
"""
