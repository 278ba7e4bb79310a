"""A batch: one store's aggregate rows, as gzip-compressed JSON, strictly validated.

::

    {"schema": 1, "store_id": "shop-1", "batch_id": "<uuid or ulid>", "created_ms": 1700000000000,
     "tables": {"agg_footfall": [{"bucket_ms": ..., "line_id": "door", "direction": "in",
                                  "count": 12, "rev": 3}, ...], ...}}

The body is that JSON in UTF-8, gzip-compressed (``Content-Encoding: gzip``), at most
:data:`MAX_BODY_BYTES` compressed, :data:`MAX_JSON_BYTES` decompressed and
:data:`MAX_ROWS` rows; a sender splits larger outboxes into several batches. Decoding
rejects anything else with a :class:`~wire.errors.WireError` naming the reason and the
JSON path: an unknown table or column, a missing one, a wrong type, a non-finite number,
a duplicate key (in an object, or a natural key twice in a table).
"""

from __future__ import annotations

import gzip
import json
import math
import re
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Final

from wire.errors import BodyTooLargeError, UnknownSchemaError, WireError
from wire.tables import (
    BUCKET_MS,
    IDENT,
    INT64_MAX,
    MAX_BINS,
    MAX_BUCKET_MS,
    TABLES,
    Column,
    TableShape,
)

#: The batch format this code speaks.
SCHEMA_VERSION: Final = 1
#: Bounds of one batch: the compressed body, the JSON inside it, and its rows.
MAX_BODY_BYTES: Final = 1 << 20
MAX_JSON_BYTES: Final = 16 << 20
MAX_ROWS: Final = 50_000

_BATCH_ID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # a UUID, lower case
    r"|[0-7][0-9A-HJKMNP-TV-Z]{25}"  # or a ULID (Crockford base32)
)
_TOP = ("schema", "store_id", "batch_id", "created_ms", "tables")
Row = dict[str, object]


@dataclass(frozen=True)
class Batch:
    """One store's rows for one delivery; ``batch_id`` is also the idempotency key.

    Attributes:
        store_id: The store (a config id).
        batch_id: A UUID (see :func:`new_batch_id`) or a ULID, unique per batch, kept
            when the batch is re-sent.
        created_ms: When the sender built it (UTC epoch ms).
        tables: Rows per table name; each row has exactly its table's columns.
    """

    store_id: str
    batch_id: str
    created_ms: int
    tables: Mapping[str, list[Row]] = field(default_factory=dict)

    @property
    def row_count(self) -> int:
        """Rows in all tables."""
        return sum(len(rows) for rows in self.tables.values())


def new_batch_id() -> str:
    """A fresh random batch id (UUID 4, lower case)."""
    return str(uuid.uuid4())


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _check_int(value: object, path: str, low: int, high: int = INT64_MAX) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(f"expected an integer, got {_type_name(value)}", path)
    if not low <= value <= high:
        raise WireError(f"{value} is outside {low}..{high}", path)
    return value


def _is_int(value: object, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _check_value(column: Column, value: object, path: str) -> object:
    """The value, checked against its column (reals come back as floats).

    ``path`` is the row's; the column's name is added to it only in an error.
    """
    kind = column.kind
    if value is None:
        if column.nullable:
            return None
        raise WireError("must not be null", f"{path}.{column.name}")
    if kind in ("int", "count", "bucket"):
        low = -INT64_MAX - 1 if kind == "int" else 0
        high = MAX_BUCKET_MS if kind == "bucket" else INT64_MAX
        number = value if _is_int(value, low, high) else _check_int(
            value, f"{path}.{column.name}", low, high)  # fmt: skip
        assert isinstance(number, int)
        if kind == "bucket" and number % BUCKET_MS:
            raise WireError(f"{number} is not a multiple of {BUCKET_MS} (5-minute buckets)",
                            f"{path}.{column.name}")  # fmt: skip
        return number
    if kind == "real":
        if type(value) is float and math.isfinite(value):
            return value
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise WireError(f"expected a number, got {_type_name(value)}", f"{path}.{column.name}")
        if not math.isfinite(value):
            raise WireError(f"non-finite number {value}", f"{path}.{column.name}")
        return float(value)
    if kind == "counts":
        where = f"{path}.{column.name}"
        if not isinstance(value, list):
            raise WireError(f"expected a list of counts, got {_type_name(value)}", where)
        if len(value) > MAX_BINS:
            raise WireError(f"{len(value)} bins, at most {MAX_BINS}", where)
        if all(_is_int(v, 0, INT64_MAX) for v in value):
            return value
        return [_check_int(v, f"{where}[{i}]", 0) for i, v in enumerate(value)]
    if not isinstance(value, str):
        raise WireError(f"expected a string, got {_type_name(value)}", f"{path}.{column.name}")
    if kind == "enum" and value not in column.choices:
        raise WireError(f"{value!r} is not one of {', '.join(column.choices)}",
                        f"{path}.{column.name}")  # fmt: skip
    if kind == "ident" and not IDENT.fullmatch(value):
        raise WireError(f"{value[:80]!r} is not an identifier ([a-z0-9_-], ≤ 63)",
                        f"{path}.{column.name}")  # fmt: skip
    return value


def _accepts(column: Column) -> Callable[[object], bool]:
    """A quick test that a value is already valid and final for ``column``.

    A value it refuses goes through :func:`_check_value`, which converts it (an integer
    real becomes a float) or raises the error with its path.
    """
    kind, choices = column.kind, column.choices
    if kind in ("count", "int"):
        low = 0 if kind == "count" else -INT64_MAX - 1
        return lambda v: type(v) is int and low <= v <= INT64_MAX
    if kind == "bucket":
        return lambda v: type(v) is int and 0 <= v <= MAX_BUCKET_MS and not v % BUCKET_MS
    if kind == "real":
        return lambda v: type(v) is float and math.isfinite(v)
    if kind == "counts":
        return lambda v: (type(v) is list and len(v) <= MAX_BINS
                          and all(type(n) is int and 0 <= n <= INT64_MAX for n in v))  # fmt: skip
    if kind == "enum":
        return lambda v: type(v) is str and v in choices
    if kind == "ident":
        return lambda v: type(v) is str and IDENT.fullmatch(v) is not None
    return lambda v: type(v) is str


Accepting = tuple[tuple[Column, Callable[[object], bool]], ...]
_ACCEPTS: dict[TableShape, Accepting] = {}


def _accepting(shape: TableShape) -> Accepting:
    """Each column of ``shape`` with its quick test (made once per shape)."""
    found = _ACCEPTS.get(shape)
    if found is None:
        found = _ACCEPTS[shape] = tuple((c, _accepts(c)) for c in shape.columns)
    return found


def check_row(shape: TableShape, row: object, path: str) -> Row:
    """Validate one row of ``shape``.

    Args:
        shape: The row's table.
        row: The decoded JSON value.
        path: Its JSON path, for errors.

    Returns:
        The row with every column checked (reals as floats).

    Raises:
        WireError: Not an object, a missing or unknown column, or a bad value.
    """
    return _check_row(shape, _accepting(shape), row, path)


def _check_row(shape: TableShape, accepting: Accepting, row: object, path: str) -> Row:
    if not isinstance(row, dict):
        raise WireError(f"expected an object, got {_type_name(row)}", path)
    names = shape.column_names
    if row.keys() != names:
        for name in row:
            if name not in names:
                raise WireError(f"unknown column {name[:80]!r} of {shape.name}", path)
        for column in shape.columns:
            if column.name not in row:
                raise WireError(f"missing column {column.name!r}", path)
    checked: Row = {}
    for column, accepts in accepting:
        value = row[column.name]
        checked[column.name] = value if accepts(value) else _check_value(column, value, path)
    return checked


def _check_table(shape: TableShape, rows: object, path: str) -> list[Row]:
    if not isinstance(rows, list):
        raise WireError(f"expected a list of rows, got {_type_name(rows)}", path)
    seen: dict[object, int] = {}
    checked = []
    key_of = itemgetter(*(c.name for c in shape.key))
    accepting = _accepting(shape)
    for i, raw in enumerate(rows):
        row = _check_row(shape, accepting, raw, f"{path}[{i}]")
        key = key_of(row)
        if key in seen:
            raise WireError(f"the same natural key as [{seen[key]}]", f"{path}[{i}]")
        seen[key] = i
        checked.append(row)
    return checked


def check_batch(document: object) -> Batch:
    """Validate a decoded batch document.

    Args:
        document: The parsed JSON.

    Returns:
        The batch.

    Raises:
        UnknownSchemaError: ``schema`` is not :data:`SCHEMA_VERSION`.
        BodyTooLargeError: More than :data:`MAX_ROWS` rows.
        WireError: Anything else that does not follow the format.
    """
    if not isinstance(document, dict):
        raise WireError(f"expected an object, got {_type_name(document)}", "$")
    schema = document.get("schema")
    if schema != SCHEMA_VERSION or isinstance(schema, bool):
        raise UnknownSchemaError(
            f"unknown schema version {schema!r} (this side speaks {SCHEMA_VERSION})", "$.schema"
        )
    for name in document:
        if name not in _TOP:
            raise WireError(f"unknown field {name[:80]!r}", "$")
    for name in _TOP:
        if name not in document:
            raise WireError(f"missing field {name!r}", "$")
    store_id, batch_id = document["store_id"], document["batch_id"]
    if not isinstance(store_id, str) or not store_id or not IDENT.fullmatch(store_id):
        raise WireError(f"{store_id!r} is not a store id", "$.store_id")
    if not isinstance(batch_id, str) or not _BATCH_ID.fullmatch(batch_id):
        raise WireError(f"{batch_id!r} is not a UUID or ULID", "$.batch_id")
    created_ms = _check_int(document["created_ms"], "$.created_ms", 0)
    tables = document["tables"]
    if not isinstance(tables, dict):
        raise WireError(f"expected an object of tables, got {_type_name(tables)}", "$.tables")
    total = sum(len(rows) for rows in tables.values() if isinstance(rows, list))
    if total > MAX_ROWS:
        raise BodyTooLargeError(f"{total} rows, at most {MAX_ROWS} a batch", "$.tables")
    checked: dict[str, list[Row]] = {}
    for name, rows in tables.items():
        shape = TABLES.get(name)
        if shape is None:
            raise WireError(f"unknown table {name[:80]!r}", "$.tables")
        checked[name] = _check_table(shape, rows, f"$.tables.{name}")
    return Batch(store_id, batch_id, created_ms, checked)


def encode_batch(batch: Batch) -> bytes:
    """The request body for ``batch``: its JSON, gzip-compressed, checked first.

    Raises:
        WireError: The batch does not validate (the sender has a bug).
        BodyTooLargeError: Over a bound; split the rows into smaller batches.
    """
    document = {
        "schema": SCHEMA_VERSION,
        "store_id": batch.store_id,
        "batch_id": batch.batch_id,
        "created_ms": batch.created_ms,
        "tables": {name: list(rows) for name, rows in batch.tables.items()},
    }
    check_batch(document)
    text = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    if len(text) > MAX_JSON_BYTES:
        raise BodyTooLargeError(f"{len(text)} bytes of JSON, at most {MAX_JSON_BYTES}")
    body = gzip.compress(text, compresslevel=6, mtime=0)
    if len(body) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"{len(body)} bytes compressed, at most {MAX_BODY_BYTES}")
    return body


def gunzip(body: bytes, max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """Decompress one gzip member, reading at most ``max_bytes`` of output.

    Raises:
        BodyTooLargeError: It decompresses to more than ``max_bytes``.
        WireError: Not gzip, truncated, or bytes after the stream.
    """
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise WireError(f"the body is not valid gzip: {exc}") from exc
    if len(out) > max_bytes:
        raise BodyTooLargeError(f"the body decompresses to more than {max_bytes} bytes")
    if not inflater.eof:
        raise WireError("the gzip stream is truncated")
    if inflater.unused_data:
        raise WireError(f"{len(inflater.unused_data)} bytes after the gzip stream")
    return out


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise WireError(f"duplicate key {key[:80]!r} in an object")
            seen.add(key)
    return document


def _reject_constant(name: str) -> object:
    raise WireError(f"non-finite number {name} (not JSON)")


def parse_json(text: bytes) -> object:
    """Parse strict JSON: UTF-8, no NaN/Infinity, no duplicate keys.

    Raises:
        WireError: Not such JSON.
    """
    try:
        return json.loads(
            text.decode("utf-8"),
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicate_keys,
        )
    except UnicodeDecodeError as exc:
        raise WireError(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    except RecursionError as exc:
        raise WireError("JSON nested too deeply") from exc
    except WireError:
        raise
    except ValueError as exc:  # json.JSONDecodeError, or an integer with too many digits
        raise WireError(f"the body is not JSON: {exc}") from exc


def decode_batch(body: bytes) -> Batch:
    """Decode a request body (gzip-compressed JSON) into a checked batch.

    Raises:
        BodyTooLargeError: Over a bound.
        UnknownSchemaError: Another schema version.
        WireError: Anything else wrong, with the reason and the path.
    """
    if len(body) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"{len(body)} bytes compressed, at most {MAX_BODY_BYTES}")
    return check_batch(parse_json(gunzip(body)))
