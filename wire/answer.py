"""The hub's answer to a batch: the acknowledgement, and a downlink channel to the box.

::

    {"ack": {"batch_id": "...", "applied_rows": 120, "duplicate": false},
     "downlink": [{"kind": "config_version", "id": "...", "payload": {"version": 3},
                   "signature": "v1,<base64>"}]}

``applied_rows`` counts rows that changed the hub (new, or a higher ``rev``); a batch id
the hub has applied before answers ``duplicate: true`` and changes nothing, so the
sender advances its high-water marks on any ``ack`` for its batch id. Downlink items
(:data:`DOWNLINK_KINDS`; the hub's rooms provide them, :mod:`cloud_hub.downlink`) are
each signed with the store's secret over ``<kind>.<id>.<canonical JSON of payload>`` and the box
must drop an item it cannot verify (:func:`verify_downlink`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

from wire.batch import parse_json
from wire.errors import SignatureError, WireError
from wire.signing import secret_key

T = TypeVar("T")

#: The downlink items this protocol version defines.
#: ``config_version``: a store config the hub holds for the box (issue 16's remote config);
#: ``software_update``: the release the box's rollout group should run (issue 16's updates,
#: verified again by the box's TUF client); ``forecast`` and ``staffing``: next days'
#: hourly forecast and the staff it needs (issue 14).
DOWNLINK_KINDS: Final = ("config_version", "software_update", "forecast", "staffing")
#: The most downlink items one answer carries.
MAX_DOWNLINK: Final = 100


@dataclass(frozen=True)
class Ack:
    """The hub took the batch: ``applied_rows`` rows changed; ``duplicate`` if seen before."""

    batch_id: str
    applied_rows: int
    duplicate: bool


@dataclass(frozen=True)
class DownlinkItem:
    """One signed item for the box."""

    kind: str
    id: str
    payload: dict[str, object] = field(default_factory=dict)
    signature: str = ""


def _canonical(kind: str, item_id: str, payload: dict[str, object]) -> bytes:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return f"{kind}.{item_id}.{text}".encode()


def _downlink_mac(secret: str, kind: str, item_id: str, payload: dict[str, object]) -> bytes:
    return hmac.new(secret_key(secret), _canonical(kind, item_id, payload), hashlib.sha256).digest()


def sign_downlink(secret: str, kind: str, item_id: str, payload: dict[str, object]) -> DownlinkItem:
    """A downlink item signed with the store's current secret.

    Raises:
        WireError: An unknown kind.
    """
    if kind not in DOWNLINK_KINDS:
        raise WireError(f"unknown downlink kind {kind!r}")
    mac = _downlink_mac(secret, kind, item_id, payload)
    return DownlinkItem(kind, item_id, payload, "v1," + base64.b64encode(mac).decode())


def verify_downlink(secrets_in_use: Sequence[str], item: DownlinkItem) -> None:
    """Accept an item only if its signature matches one of the store's secrets.

    Raises:
        SignatureError: It does not (or is malformed).
    """
    version, _, value = item.signature.partition(",")
    try:
        given = base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise SignatureError(f"downlink {item.id!r}: the signature is not base64") from exc
    if version == "v1":
        for secret in secrets_in_use:
            expected = _downlink_mac(secret, item.kind, item.id, item.payload)
            if hmac.compare_digest(expected, given):
                return
    raise SignatureError(f"downlink {item.kind} {item.id!r}: no signature matches")


def encode_answer(ack: Ack, downlink: Sequence[DownlinkItem] = ()) -> bytes:
    """The hub's JSON answer."""
    return json.dumps(
        {
            "ack": {
                "batch_id": ack.batch_id,
                "applied_rows": ack.applied_rows,
                "duplicate": ack.duplicate,
            },
            "downlink": [
                {"kind": d.kind, "id": d.id, "payload": d.payload, "signature": d.signature}
                for d in downlink
            ],
        },
        separators=(",", ":"),
    ).encode()


def _field(obj: dict[str, object], name: str, kind: type[T], path: str) -> T:
    value = obj.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise WireError(f"expected {kind.__name__} {name!r}", path)
    return value


def decode_answer(body: bytes) -> tuple[Ack, list[DownlinkItem]]:
    """Parse the hub's answer strictly (the box uses it to advance its marks).

    Downlink items of a kind this side does not know are kept out (a newer hub); their
    signatures are the caller's to verify.

    Raises:
        WireError: Not such an answer.
    """
    document = parse_json(body)
    if not isinstance(document, dict) or not isinstance(document.get("ack"), dict):
        raise WireError("expected an object with an 'ack' object", "$")
    raw_ack: dict[str, object] = document["ack"]
    ack = Ack(
        _field(raw_ack, "batch_id", str, "$.ack"),
        _field(raw_ack, "applied_rows", int, "$.ack"),
        _field(raw_ack, "duplicate", bool, "$.ack"),
    )
    raw_items = document.get("downlink", [])
    if not isinstance(raw_items, list) or len(raw_items) > MAX_DOWNLINK:
        raise WireError(f"expected a list of at most {MAX_DOWNLINK} items", "$.downlink")
    items = []
    for i, raw in enumerate(raw_items):
        path = f"$.downlink[{i}]"
        if not isinstance(raw, dict):
            raise WireError("expected an object", path)
        item = DownlinkItem(
            _field(raw, "kind", str, path),
            _field(raw, "id", str, path),
            _field(raw, "payload", dict, path),
            _field(raw, "signature", str, path),
        )
        if item.kind in DOWNLINK_KINDS:
            items.append(item)
    return ack, items
