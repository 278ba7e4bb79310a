"""The hub's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

- ``regions``, ``stores`` (the registry), ``store_secrets`` (several active per store
  while one is rotated; stored in clear, because verifying an HMAC needs the secret
  itself: protect the database as the secrets it holds);
- ``applied_batches`` (store, batch id: the idempotency keys) and ``seen_deliveries``
  (store, batch id, signed timestamp: replay detection, pruned after twice the tolerance);
- per wire table ``<table>_5m``: the 5-minute facts, keyed by store + the natural key,
  with the row's ``rev`` (a higher one replaces the row, an equal or lower one is a no-op)
  and when it arrived; on PostgreSQL partitioned by month of ``bucket_ms``
  (:mod:`cloud_hub.partitions`);
- ``<table>_hour`` and ``<table>_day``: rollups kept on ingest in the same transaction
  (an hour is the store's local hour, its start in UTC ms; a day is the store's local
  date), with ``buckets`` (how many 5-minute rows), ``sum_<col>`` and ``max_<col>`` as
  :data:`ROLLUPS` says (a mean is ``sum_<col> / buckets``);
- ``ledger_hours``: the completeness ledger's source, per store and local hour, how many
  5-minute windows arrived and the box's verdict on each (complete, partial, missing),
  first and last arrival; an hour without a row has not been received;
- ``ledger_days``: the same per store and local day, kept from ``ledger_hours`` in the
  same transaction (:func:`cloud_hub.ledger.day_row`): ``hours``, one letter per local
  hour of the day (``c`` complete, ``p`` partial, ``m`` missing, ``-`` not received),
  the hours in each state, first and last arrival; a day without a row has not been
  received. The dashboard's ledger reads it (one row per store-day, never the hours);
- the dashboard's accounts: ``hub_users`` (scrypt hash, role admin | manager | viewer),
  ``hub_user_regions`` (the regions a manager, or a region-bound viewer, may see; none
  for a viewer: every store), ``hub_sessions`` (server-side sessions, the id only
  hashed), ``hub_settings`` (the cookie key, the pending setup token's hash);
- ``pos_hours``: point-of-sale transactions and sales per store and local hour (with its
  local day, for the daily sums), imported by CSV or the signed POS API;
- ``day_totals``: what the comparison sums, one row per store and local day (visitors,
  dwell, queue, POS transactions and sales; NULL transactions: no POS data that day),
  kept from the daily rollups and ``pos_hours`` in the transaction that changes them
  (:mod:`cloud_hub.day_totals`), so a comparison of 500 stores reads 10,500 rows, not
  the rollups' 40,000.

The migrations in ``cloud_hub/migrations/versions/`` create exactly these tables (a test
compares them); change both together.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

from wire import TABLES, TableShape
from wire.tables import Kind

metadata = MetaData()

regions = Table(
    "regions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
)

stores = Table(
    "stores",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("region_id", String(64), ForeignKey("regions.id"), nullable=False),
    Column("area_m2", Float, nullable=True),
    Column("tz", String(64), nullable=False),
    Column("opening_hours", Text, nullable=True),  # JSON, for a later issue
    Column("created_ms", BigInteger, nullable=False),
)

store_secrets = Table(
    "store_secrets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("store_id", String(64), ForeignKey("stores.id"), nullable=False, index=True),
    Column("secret", String(200), nullable=False),  # in clear: HMAC needs it
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=True),  # NULL: until rotated
)

applied_batches = Table(
    "applied_batches",
    metadata,
    Column("store_id", String(64), ForeignKey("stores.id"), primary_key=True),
    Column("batch_id", String(64), primary_key=True),
    Column("received_ms", BigInteger, nullable=False),
    Column("rows", Integer, nullable=False),  # rows in the batch
    Column("applied_rows", Integer, nullable=False),  # rows that changed the hub
    Index("ix_applied_batches_store_received", "store_id", "received_ms"),  # a store's last
)

seen_deliveries = Table(
    "seen_deliveries",
    metadata,
    Column("store_id", String(64), primary_key=True),
    Column("msg_id", String(128), primary_key=True),
    Column("timestamp_s", BigInteger, primary_key=True),
    Index("ix_seen_deliveries_timestamp_s", "timestamp_s"),
)

ledger_hours = Table(
    "ledger_hours",
    metadata,
    Column("store_id", String(64), primary_key=True),
    Column("hour_ms", BigInteger, primary_key=True),
    Column("buckets", Integer, nullable=False),
    Column("complete", Integer, nullable=False),
    Column("partial", Integer, nullable=False),
    Column("missing", Integer, nullable=False),
    Column("first_received_ms", BigInteger, nullable=False),
    Column("last_received_ms", BigInteger, nullable=False),
)

ledger_days = Table(
    "ledger_days",
    metadata,
    Column("store_id", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("hours", String(32), nullable=False),  # a letter per local hour: c, p, m or -
    Column("complete", Integer, nullable=False),
    Column("partial", Integer, nullable=False),
    Column("missing", Integer, nullable=False),
    Column("first_received_ms", BigInteger, nullable=False),
    Column("last_received_ms", BigInteger, nullable=False),
)

hub_users = Table(
    "hub_users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(256), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

hub_user_regions = Table(
    "hub_user_regions",
    metadata,
    Column("username", String(64), ForeignKey("hub_users.username"), primary_key=True),
    Column("region_id", String(64), ForeignKey("regions.id"), primary_key=True),
)

hub_sessions = Table(
    "hub_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("username", String(64), ForeignKey("hub_users.username"), nullable=False, index=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)

hub_settings = Table(
    "hub_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

pos_hours = Table(
    "pos_hours",
    metadata,
    Column("store_id", String(64), ForeignKey("stores.id"), primary_key=True),
    Column("hour_ms", BigInteger, primary_key=True),
    Column("day", String(10), nullable=False),
    Column("transactions", BigInteger, nullable=False),
    Column("sales", Float, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Index("ix_pos_hours_store_day", "store_id", "day"),
)

day_totals = Table(
    "day_totals",
    metadata,
    Column("store_id", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("visitors", BigInteger, nullable=False),
    Column("dwell_visits", BigInteger, nullable=False),
    Column("dwell_s", Float, nullable=False),
    Column("served", BigInteger, nullable=False),
    Column("wait_s", Float, nullable=False),
    Column("transactions", BigInteger),  # NULL: no POS hours that day
    Column("sales", Float),
)

Rollup = Literal["sum", "max"]
#: What the hourly and daily rollups keep of each table's value columns.
ROLLUPS: Final[dict[str, dict[str, Rollup]]] = {
    "agg_windows": {"coverage": "sum", "customers": "sum", "staff": "sum"},
    "agg_footfall": {"count": "sum"},
    "agg_occupancy": {"mean": "sum", "max": "max"},
    "agg_dwell": {"visits": "sum", "total_s": "sum"},
    "agg_queue": {
        "joined": "sum",
        "served": "sum",
        "abandoned": "sum",
        "wait_total_s": "sum",
        "mean_len": "sum",
        "max_len": "max",
    },
    "agg_transitions": {"count": "sum"},
    "agg_heatmap": {"person_s": "sum", "people": "max"},
    "agg_funnel": {"people": "sum", "kind": "max"},
    "agg_alerts": {"raised": "sum", "active_s": "sum"},
}


def sql_type(kind: Kind) -> TypeEngine[Any]:
    """The column type of a wire kind (a ``counts`` list is stored as JSON text)."""
    if kind in ("ident", "enum"):
        return String(64)
    if kind == "real":
        return Float()
    return Text() if kind == "counts" else BigInteger()


def rollup_name(column: str, how: Rollup) -> str:
    """``sum_count``, ``max_max_len``."""
    return f"{how}_{column}"


def _facts(shape: TableShape) -> Table:
    columns: list[Column[Any]] = [Column("store_id", String(64), primary_key=True)]
    columns += [Column(c.name, sql_type(c.kind), primary_key=True) for c in shape.key]
    columns += [Column(c.name, sql_type(c.kind), nullable=c.nullable) for c in shape.values]
    columns += [
        Column("rev", BigInteger, nullable=False),
        Column("received_ms", BigInteger, nullable=False),
    ]
    return Table(
        f"{shape.name}_5m", metadata, *columns, postgresql_partition_by="RANGE (bucket_ms)"
    )


def _rollup(shape: TableShape, grain: str) -> Table:
    by_column = {c.name: c for c in shape.values}
    time_column: Column[Any] = (
        Column("hour_ms", BigInteger, primary_key=True)
        if grain == "hour"
        else Column("day", String(10), primary_key=True)
    )
    columns: list[Column[Any]] = [Column("store_id", String(64), primary_key=True), time_column]
    columns += [Column(c.name, sql_type(c.kind), primary_key=True) for c in shape.key[1:]]
    columns.append(Column("buckets", Integer, nullable=False))
    columns += [
        Column(rollup_name(name, how), sql_type(by_column[name].kind), nullable=True)
        for name, how in ROLLUPS[shape.name].items()
    ]
    return Table(f"{shape.name}_{grain}", metadata, *columns)


#: The 5-minute facts, the hourly and the daily rollup of each wire table, by wire name.
FACTS: Final[dict[str, Table]] = {name: _facts(shape) for name, shape in TABLES.items()}
HOURLY: Final[dict[str, Table]] = {name: _rollup(s, "hour") for name, s in TABLES.items()}
DAILY: Final[dict[str, Table]] = {name: _rollup(s, "day") for name, s in TABLES.items()}

# --- the fleet (issue 16): heartbeats, ops alerts, remote configuration ------------------

box_heartbeats = Table(
    "box_heartbeats",  # each store's newest heartbeat
    metadata,
    Column("store_id", String(64), ForeignKey("stores.id"), primary_key=True),
    Column("received_ms", BigInteger, nullable=False),
    Column("sent_ms", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # ok | degraded, as the box says
    Column("software", String(64), nullable=False),
    Column("config_version", BigInteger, nullable=False),
    Column("body", Text, nullable=False),  # the heartbeat's JSON (wire.heartbeat)
)

heartbeat_history = Table(
    "heartbeat_history",  # the last HISTORY_PER_STORE heartbeats of each store
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("store_id", String(64), ForeignKey("stores.id"), nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list
    Index("ix_heartbeat_history_store_received", "store_id", "received_ms"),
)

fleet_alerts = Table(
    "fleet_alerts",  # an ops alert: raised once, cleared once, each notified once
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("store_id", String(64), ForeignKey("stores.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # offline | degraded
    Column("reason", Text, nullable=False),
    Column("raised_ms", BigInteger, nullable=False),
    Column("seen_ms", BigInteger, nullable=True),  # the box's newest heartbeat then
    Column("cleared_ms", BigInteger, nullable=True),
    Column("raise_sent_ms", BigInteger, nullable=True),  # NULL: not notified yet
    Column("clear_sent_ms", BigInteger, nullable=True),
    Index("ix_fleet_alerts_store", "store_id", "cleared_ms"),
)

store_configs = Table(
    "store_configs",  # each store's config versions edited on the hub
    metadata,
    Column("store_id", String(64), ForeignKey("stores.id"), primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("parent", BigInteger, nullable=True),  # the box's version it was edited from
    Column("yaml", Text, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("author", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

rollouts = Table(
    "rollouts",  # a staged rollout of one release version to groups of stores
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(64), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # running | paused | aborted | done
    Column("reason", Text, nullable=False),  # why it is paused, aborted or done
    Column("max_failure_rate", Float, nullable=False),
    Column("soak_min", Float, nullable=False),
    Column("forecast_check", Boolean, nullable=False),
    Column("author", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

rollout_groups = Table(
    "rollout_groups",  # the groups of a rollout, started one after another
    metadata,
    Column("rollout_id", Integer, ForeignKey("rollouts.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("started_ms", BigInteger, nullable=True),  # None: not started yet
)

rollout_stores = Table(
    "rollout_stores",  # each store of a rollout, its group and what its box reported
    metadata,
    Column("rollout_id", Integer, ForeignKey("rollouts.id"), primary_key=True),
    Column("store_id", String(64), ForeignKey("stores.id"), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("outcome", String(16), nullable=True),  # wire.update_report.OUTCOMES; None: pending
    Column("reason", Text, nullable=False),
    Column("running", String(64), nullable=True),
    Column("reported_ms", BigInteger, nullable=True),
)
