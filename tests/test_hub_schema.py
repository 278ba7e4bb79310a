"""The hub's migrations give exactly its schema, on both back ends; PostgreSQL partitions."""

from __future__ import annotations

import re

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from cloud_hub.db import is_postgres, open_engine
from cloud_hub.partitions import ensure_partitions
from cloud_hub.schema import FACTS, metadata

PARTITION = re.compile(r".*_5m_y\d{4}m\d{2}")


def _not_a_partition(name: str | None, type_: str, _parent: object) -> bool:
    return not (type_ == "table" and name and PARTITION.fullmatch(name))


def test_migrating_gives_exactly_the_schema(hub_db: str) -> None:
    engine = open_engine(hub_db)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _not_a_partition})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def test_postgres_facts_are_partitioned_by_month_and_created_on_demand(hub_db: str) -> None:
    engine = open_engine(hub_db)
    if not is_postgres(engine):
        assert engine.dialect.name == "sqlite"  # no partitions there; ensure does nothing
        ensure_partitions(engine, [0])
        return
    query = text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'agg_footfall_5m'"
    )
    with engine.connect() as conn:
        before = set(conn.execute(query).scalars())
        strategy = conn.execute(
            text("SELECT partstrat FROM pg_partitioned_table t JOIN pg_class c "
                 "ON c.oid = t.partrelid WHERE c.relname = 'agg_footfall_5m'")
        ).scalar_one()  # fmt: skip
    assert strategy == "r"  # RANGE
    assert len(before) >= 3  # this month and the next two
    march_2020 = 1_583_020_800_000 + 3_600_000  # 2020-03-01T01:00Z
    ensure_partitions(engine, [march_2020])
    with engine.connect() as conn:
        after = set(conn.execute(query).scalars())
        for facts in FACTS.values():
            assert conn.execute(text(f"SELECT to_regclass('{facts.name}_y2020m03')")).scalar()
    assert after - before == {"agg_footfall_5m_y2020m03"}
    engine.dispose()
