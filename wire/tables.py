"""The row shape of every table a batch may carry, defined once for both ends.

The shapes follow the box's aggregate tables (``local_db/migrations.py``: ``agg_*``), by
column name, without importing them: a row is the table's natural key (``bucket_ms`` and
the table's dimensions; the store comes from the batch) plus its value columns plus
``rev``, the row's revision (a re-analysed bucket is sent again with a higher one and
wins). Only these tables and columns can be expressed; there is no column for a track,
a point, a position or a pixel, and text is limited to identifiers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Final, Literal

#: The aggregates' bucket: 5 minutes, aligned to the UTC epoch.
BUCKET_MS: Final = 300_000
#: Every integer on the wire fits a signed 64-bit column.
INT64_MAX: Final = 2**63 - 1
#: The last bucket a batch may name (the end of year 9999 UTC).
MAX_BUCKET_MS: Final = 253_402_300_800_000 - BUCKET_MS
#: Identifiers (zone, line, step kind): the config's id pattern, or empty (the whole store).
IDENT: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}|")
#: The most bins a histogram may have.
MAX_BINS: Final = 64

Kind = Literal["bucket", "int", "count", "real", "ident", "enum", "counts"]


@dataclass(frozen=True)
class Column:
    """One column of a row.

    Attributes:
        name: The column's name (as in the box's table).
        kind: ``bucket`` (epoch ms, a multiple of :data:`BUCKET_MS`, at most
            :data:`MAX_BUCKET_MS`), ``int`` (signed
            64-bit), ``count`` (an int ≥ 0), ``real`` (a finite number), ``ident``
            (matches :data:`IDENT`), ``enum`` (one of ``choices``), ``counts`` (a list of at
            most :data:`MAX_BINS` counts).
        nullable: Whether ``null`` is allowed.
        choices: The allowed values of an ``enum``.
    """

    name: str
    kind: Kind
    nullable: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableShape:
    """A table's row: natural key columns, value columns, and ``rev``."""

    name: str
    key: tuple[Column, ...]
    values: tuple[Column, ...]

    @cached_property
    def columns(self) -> tuple[Column, ...]:
        """Key and value columns, then ``rev``."""
        return (*self.key, *self.values, REV)

    @cached_property
    def column_names(self) -> frozenset[str]:
        """The exact set of names a row must have."""
        return frozenset(c.name for c in self.columns)


REV: Final = Column("rev", "count")
_BUCKET = Column("bucket_ms", "bucket")
_ZONE = Column("zone_id", "ident")


def _real(name: str, nullable: bool = False) -> Column:
    return Column(name, "real", nullable)


def _count(name: str) -> Column:
    return Column(name, "count")


_SHAPES = (
    TableShape(
        "agg_windows",
        (_BUCKET,),
        (
            Column("computed_at_ms", "int"),
            _real("coverage"),
            Column("status", "enum", choices=("complete", "partial", "missing")),
            _count("customers"),
            _count("staff"),
        ),
    ),
    TableShape(
        "agg_footfall",
        (_BUCKET, Column("line_id", "ident"), Column("direction", "enum", choices=("in", "out"))),
        (_count("count"),),
    ),
    TableShape("agg_occupancy", (_BUCKET, _ZONE), (_real("mean"), _count("max"))),
    TableShape(
        "agg_dwell",
        (_BUCKET, _ZONE),
        (
            _count("visits"),
            _real("total_s"),
            _real("p10_s", True),
            _real("p50_s", True),
            _real("p90_s", True),
            Column("hist", "counts"),
        ),
    ),
    TableShape(
        "agg_queue",
        (_BUCKET, _ZONE),
        (
            _count("joined"),
            _count("served"),
            _count("abandoned"),
            _real("wait_total_s"),
            _real("mean_wait_s", True),
            _real("p90_wait_s", True),
            _real("mean_len"),
            _count("max_len"),
            _real("predicted_mae_s", True),
        ),
    ),
    TableShape(
        "agg_transitions",
        (_BUCKET, Column("from_zone", "ident"), Column("to_zone", "ident")),
        (_count("count"),),
    ),
    TableShape(
        "agg_heatmap",
        (_BUCKET, Column("cell_x", "int"), Column("cell_y", "int")),
        (_real("person_s"), _count("people")),
    ),
    TableShape(
        "agg_funnel", (_BUCKET, _count("step")), (Column("kind", "ident"), _count("people"))
    ),
    TableShape(
        "agg_alerts",
        (_BUCKET, Column("rule_id", "ident"), Column("target", "ident")),
        (
            Column("kind", "ident"),
            Column("severity", "enum", choices=("info", "warning", "critical")),
            _count("raised"),
            _real("active_s"),
        ),
    ),
)

#: Every table a batch may carry, by name.
TABLES: Final[dict[str, TableShape]] = {shape.name: shape for shape in _SHAPES}
