"""The wire protocol between a box (``sync/``) and the hub (``cloud_hub/``), and nothing else.

Both ends import this package; it imports nothing of ours. A delivery is one HTTP
request, ``POST`` :data:`BATCH_PATH`:

1. the body: a :class:`Batch` of one store's aggregate rows, gzip-compressed JSON, bounded
   (:data:`MAX_BODY_BYTES`, :data:`MAX_JSON_BYTES`, :data:`MAX_ROWS`):
   :func:`encode_batch` / :func:`decode_batch` (``wire.batch``); the tables and their row
   shapes, natural key + values + ``rev``: :data:`TABLES` (``wire.tables``);
2. the headers, Standard Webhooks: :func:`sign_headers` / :func:`parse_headers`,
   :func:`verify`, :func:`check_timestamp` (``wire.signing``); the batch id is the
   ``webhook-id`` and the idempotency key;
3. the answer: :class:`Ack` plus signed :class:`DownlinkItem` s
   (:func:`encode_answer` / :func:`decode_answer`, ``wire.answer``).

A sender (the box's outbox, to come in ``sync/``) builds batches oldest first, at most
:data:`MAX_ROWS` rows each, keeps a batch's id when it re-sends it (signing afresh each
time), and advances its high-water marks only on an ``ack`` for that id (``duplicate``
included). Everything a receiver refuses raises a :class:`WireError` (with the kinds
:class:`BodyTooLargeError`, :class:`UnknownSchemaError`, :class:`SignatureError`,
:class:`TimestampError`), whose message names the reason and the JSON path.
"""

from typing import Final

from wire.answer import (
    DOWNLINK_KINDS,
    Ack,
    DownlinkItem,
    decode_answer,
    encode_answer,
    sign_downlink,
    verify_downlink,
)
from wire.batch import (
    MAX_BODY_BYTES,
    MAX_JSON_BYTES,
    MAX_ROWS,
    SCHEMA_VERSION,
    Batch,
    Row,
    check_batch,
    decode_batch,
    encode_batch,
    gunzip,
    new_batch_id,
)
from wire.errors import (
    BodyTooLargeError,
    SignatureError,
    TimestampError,
    UnknownSchemaError,
    WireError,
)
from wire.signing import (
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_STORE,
    HEADER_TIMESTAMP,
    TOLERANCE_S,
    SignedHeaders,
    check_timestamp,
    generate_secret,
    parse_headers,
    sign,
    sign_headers,
    verify,
)
from wire.tables import BUCKET_MS, TABLES, Column, TableShape

#: Where the hub takes batches.
BATCH_PATH: Final = "/api/v1/batches"

__all__ = [
    "BATCH_PATH",
    "BUCKET_MS",
    "DOWNLINK_KINDS",
    "HEADER_ID",
    "HEADER_SIGNATURE",
    "HEADER_STORE",
    "HEADER_TIMESTAMP",
    "MAX_BODY_BYTES",
    "MAX_JSON_BYTES",
    "MAX_ROWS",
    "SCHEMA_VERSION",
    "TABLES",
    "TOLERANCE_S",
    "Ack",
    "Batch",
    "BodyTooLargeError",
    "Column",
    "DownlinkItem",
    "Row",
    "SignatureError",
    "SignedHeaders",
    "TableShape",
    "TimestampError",
    "UnknownSchemaError",
    "WireError",
    "check_batch",
    "check_timestamp",
    "decode_answer",
    "decode_batch",
    "encode_answer",
    "encode_batch",
    "generate_secret",
    "gunzip",
    "new_batch_id",
    "parse_headers",
    "sign",
    "sign_downlink",
    "sign_headers",
    "verify",
    "verify_downlink",
]
