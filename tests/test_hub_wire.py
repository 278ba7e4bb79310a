"""The wire protocol alone: batches, their validation, signatures, the answer."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

import wire
from wire import (
    BUCKET_MS,
    MAX_BODY_BYTES,
    MAX_ROWS,
    TABLES,
    Ack,
    Batch,
    BodyTooLargeError,
    SignatureError,
    TimestampError,
    UnknownSchemaError,
    WireError,
)

T0 = 1_700_000_100_000 - 1_700_000_100_000 % BUCKET_MS
FOOTFALL = {"bucket_ms": T0, "line_id": "door", "direction": "in", "count": 7, "rev": 1}
DWELL = {
    "bucket_ms": T0, "zone_id": "", "visits": 3, "total_s": 90.5, "p10_s": None, "p50_s": 30.0,
    "p90_s": 50, "hist": [0, 1, 2, 0, 0, 0, 0, 0], "rev": 2,
}  # fmt: skip


def document(**tables: list[dict[str, object]]) -> dict[str, Any]:
    """A valid batch document (a fresh copy: tests mutate it)."""
    doc = {
        "schema": 1, "store_id": "shop-1", "batch_id": wire.new_batch_id(), "created_ms": T0,
        "tables": tables or {"agg_footfall": [FOOTFALL]},
    }  # fmt: skip
    copy: dict[str, Any] = json.loads(json.dumps(doc))
    return copy


def body_of(doc: object) -> bytes:
    return gzip.compress(json.dumps(doc).encode())


def test_a_batch_round_trips_through_gzip_json() -> None:
    batch = Batch(
        "shop-1", wire.new_batch_id(), T0, {"agg_footfall": [FOOTFALL], "agg_dwell": [DWELL]}
    )
    body = wire.encode_batch(batch)
    assert body[:2] == b"\x1f\x8b"
    back = wire.decode_batch(body)
    assert back.store_id == "shop-1" and back.batch_id == batch.batch_id
    assert back.tables["agg_footfall"] == [FOOTFALL]
    assert back.tables["agg_dwell"][0]["p90_s"] == 50.0  # reals come back as floats
    assert back.row_count == 2


@pytest.mark.parametrize(
    ("mutate", "path", "reason"),
    [
        (lambda d: d["tables"].update(track_points=[{}]), "$.tables",
         "unknown table 'track_points'"),
        (lambda d: d["tables"]["agg_footfall"][0].pop("count"), "$.tables.agg_footfall[0]",
         "missing column 'count'"),
        (lambda d: d["tables"]["agg_footfall"][0].update(x_m=1.0), "$.tables.agg_footfall[0]",
         "unknown column 'x_m'"),
        (lambda d: d["tables"]["agg_footfall"][0].update(count="7"),
         "$.tables.agg_footfall[0].count", "expected an integer, got str"),
        (lambda d: d["tables"]["agg_footfall"][0].update(count=True),
         "$.tables.agg_footfall[0].count", "expected an integer, got bool"),
        (lambda d: d["tables"]["agg_footfall"][0].update(count=-1),
         "$.tables.agg_footfall[0].count", "-1 is outside 0.."),
        (lambda d: d["tables"]["agg_footfall"][0].update(direction="up"),
         "$.tables.agg_footfall[0].direction", "'up' is not one of in, out"),
        (lambda d: d["tables"]["agg_footfall"][0].update(bucket_ms=T0 + 1),
         "$.tables.agg_footfall[0].bucket_ms", "not a multiple of 300000"),
        (lambda d: d["tables"]["agg_footfall"][0].update(line_id="Door 1; DROP"),
         "$.tables.agg_footfall[0].line_id", "is not an identifier"),
        (lambda d: d["tables"]["agg_footfall"].append(dict(FOOTFALL, count=9)),
         "$.tables.agg_footfall[1]", "the same natural key as [0]"),
        (lambda d: d.update(store_id=""), "$.store_id", "is not a store id"),
        (lambda d: d.update(batch_id="1"), "$.batch_id", "is not a UUID or ULID"),
        (lambda d: d.update(extra=1), "$", "unknown field 'extra'"),
        (lambda d: d.pop("created_ms"), "$", "missing field 'created_ms'"),
    ],
)  # fmt: skip
def test_decoding_names_the_reason_and_the_path(
    mutate: Callable[[dict[str, Any]], object], path: str, reason: str
) -> None:
    doc = document()
    mutate(doc)
    with pytest.raises(WireError) as caught:
        wire.decode_batch(body_of(doc))
    assert caught.value.path == path
    assert reason in caught.value.reason


def test_a_dwell_row_checks_its_nullable_reals_and_histogram() -> None:
    for change, path in (
        ({"total_s": None}, "$.tables.agg_dwell[0].total_s"),
        ({"hist": [1, -1]}, "$.tables.agg_dwell[0].hist[1]"),
        ({"hist": [0] * 65}, "$.tables.agg_dwell[0].hist"),
    ):
        with pytest.raises(WireError) as caught:
            wire.decode_batch(body_of(document(agg_dwell=[dict(DWELL, **change)])))
        assert caught.value.path == path, change


def test_a_number_too_large_for_a_double_is_non_finite() -> None:
    text = json.dumps(document(agg_dwell=[DWELL])).replace('"p50_s": 30.0', '"p50_s": 1e400')
    with pytest.raises(WireError, match="non-finite number inf") as caught:
        wire.decode_batch(gzip.compress(text.encode()))
    assert caught.value.path == "$.tables.agg_dwell[0].p50_s"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_are_refused(literal: str) -> None:
    text = json.dumps(document()).replace('"count": 7', f'"count": {literal}')
    with pytest.raises(WireError, match=f"non-finite number {literal}"):
        wire.decode_batch(gzip.compress(text.encode()))


def test_bad_bodies_each_get_their_reason() -> None:
    good = body_of(document())
    cases = {
        good[: len(good) // 2]: "truncated",
        b"not gzip at all": "not valid gzip",
        good + b"junk": "bytes after the gzip stream",
        gzip.compress(b'{"schema": 1, '): "not JSON",
        gzip.compress(b"\xff\xfe"): "not UTF-8",
        gzip.compress(b"[" * 100_000 + b"]" * 100_000): "nested too deeply",
        gzip.compress(b'{"schema": 1, "schema": 1}'): "duplicate key 'schema'",
    }
    for body, reason in cases.items():
        with pytest.raises(WireError, match=reason):
            wire.decode_batch(body)


def test_schema_version_is_checked_first() -> None:
    doc = document()
    doc.update(schema=2, tables={"nope": 1})
    with pytest.raises(UnknownSchemaError, match="unknown schema version 2"):
        wire.decode_batch(body_of(doc))


def test_bounds_compressed_decompressed_and_rows() -> None:
    with pytest.raises(BodyTooLargeError, match="compressed"):
        wire.decode_batch(b"\x1f\x8b" + bytes(MAX_BODY_BYTES))
    with pytest.raises(BodyTooLargeError, match="decompresses to more than"):
        wire.decode_batch(gzip.compress(b" " * (wire.MAX_JSON_BYTES + 1)))
    rows = [dict(FOOTFALL, bucket_ms=T0 + i * BUCKET_MS) for i in range(MAX_ROWS + 1)]
    with pytest.raises(BodyTooLargeError, match=f"at most {MAX_ROWS}"):
        wire.encode_batch(Batch("shop-1", wire.new_batch_id(), T0, {"agg_footfall": rows}))


def test_no_trajectory_or_pixel_field_can_be_expressed() -> None:
    banned = {"track_id", "t_ms", "x_m", "y_m", "x", "y", "conf", "frame", "image", "pixels",
              "bbox", "person_id", "trajectory", "points"}  # fmt: skip
    names = {c.name for shape in TABLES.values() for c in shape.columns}
    assert not names & banned
    assert not {"track_points", "camera_events"} & TABLES.keys()
    # text is identifiers only: no free-form field to smuggle coordinates in
    kinds = {c.kind for shape in TABLES.values() for c in shape.columns}
    assert kinds <= {"bucket", "int", "count", "real", "ident", "enum", "counts"}
    for field in ("track_id", "x_m"):
        doc = document()
        doc["tables"]["agg_footfall"][0] = dict(FOOTFALL, **{field: 1})
        with pytest.raises(WireError, match=f"unknown column '{field}'"):
            wire.decode_batch(body_of(doc))


# The Standard Webhooks spec's test vector (its reference libraries' tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TS, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_spec_vector() -> None:
    assert wire.sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE
    headers = {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TS),
               "webhook-signature": f"v1a,xyz= {SPEC_SIGNATURE}"}  # fmt: skip
    signed = wire.parse_headers(headers)
    assert wire.verify([SPEC_SECRET], signed, SPEC_BODY) == 0
    with pytest.raises(SignatureError):
        wire.verify([SPEC_SECRET], signed, SPEC_BODY + b" ")


def test_several_signatures_for_rotation_and_any_active_secret() -> None:
    old, new, other = wire.generate_secret(), wire.generate_secret(), wire.generate_secret()
    body = b"\x1f\x8b binary body \x00\xff"
    headers = wire.sign_headers([new, old], "id-1", "shop-1", body, 1_000)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert headers["Content-Encoding"] == "gzip" and headers["footfall-store"] == "shop-1"
    signed = wire.parse_headers(headers)
    assert wire.verify([old], signed, body) == 0  # the hub still has only the old one
    assert wire.verify([other, new], signed, body) == 1
    with pytest.raises(SignatureError, match="no signature matches"):
        wire.verify([other], signed, body)


@pytest.mark.parametrize(
    ("headers", "error", "reason"),
    [
        ({"webhook-timestamp": "1", "webhook-signature": "v1,AA=="}, SignatureError,
         "missing header webhook-id"),
        ({"webhook-id": "a", "webhook-timestamp": "1.5", "webhook-signature": "v1,AA=="},
         TimestampError, "not integer Unix seconds"),
        ({"webhook-id": "a", "webhook-timestamp": "1", "webhook-signature": "v1AA"},
         SignatureError, "is not VERSION,SIG"),
        ({"webhook-id": "a", "webhook-timestamp": "1", "webhook-signature": "v1,@@"},
         SignatureError, "not base64"),
        ({"webhook-id": "a", "webhook-timestamp": "1", "webhook-signature": "v2,AA=="},
         SignatureError, "no v1 signature"),
    ],
)  # fmt: skip
def test_malformed_headers_are_signature_errors(
    headers: dict[str, str], error: type[WireError], reason: str
) -> None:
    with pytest.raises(error, match=reason):
        wire.parse_headers(headers)


def test_timestamp_tolerance_is_five_minutes_both_ways() -> None:
    now = time.time()
    wire.check_timestamp(int(now) - 299, now)
    wire.check_timestamp(int(now) + 299, now)
    with pytest.raises(TimestampError, match="behind the receiver's clock"):
        wire.check_timestamp(int(now) - 301, now)
    with pytest.raises(TimestampError, match="ahead of the receiver's clock"):
        wire.check_timestamp(int(now) + 301, now)


def test_the_answer_round_trips_and_downlink_items_are_verified() -> None:
    secret, other = wire.generate_secret(), wire.generate_secret()
    item = wire.sign_downlink(secret, "config_version", "cfg-3", {"version": 3})
    body = wire.encode_answer(Ack("b-1", 12, False), [item])
    ack, items = wire.decode_answer(body)
    assert ack == Ack("b-1", 12, False) and items == [item]
    wire.verify_downlink([other, secret], items[0])
    with pytest.raises(SignatureError):
        wire.verify_downlink([other], items[0])
    forged = wire.DownlinkItem(item.kind, item.id, {"version": 4}, item.signature)
    with pytest.raises(SignatureError):
        wire.verify_downlink([secret], forged)
    with pytest.raises(WireError, match="expected int 'applied_rows'"):
        wire.decode_answer(b'{"ack": {"batch_id": "b", "applied_rows": true, "duplicate": false}}')
