"""Signing a delivery in the Standard Webhooks shape (https://www.standardwebhooks.com/).

Headers of every batch request:

- ``webhook-id``: the batch id (also the idempotency key: a re-sent batch keeps it);
- ``webhook-timestamp``: when it was signed, integer Unix seconds;
- ``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` of
  ``<id>.<timestamp>.<body>``, the body being the exact (compressed) bytes sent, one per
  secret in use (several while a store's secret is rotated);
- ``footfall-store``: the store whose secrets verify it.

A secret is ``whsec_`` + base64 of random bytes (:func:`generate_secret`); the HMAC key
is the decoded bytes. Our own small implementation rather than the ``standardwebhooks``
package (1.1.0): that one signs and verifies text only (it ``.decode()``s the body, and
our body is gzip), lets a malformed signature header escape as ``ValueError`` or
``binascii.Error``, accepts fractional timestamps, and has no injectable clock.
``tests/test_hub_wire.py`` checks this one against the spec's test vector.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from wire.errors import SignatureError, TimestampError, WireError

#: A signature older or newer than this (seconds from the receiver's clock) is refused.
TOLERANCE_S: Final = 300
SECRET_PREFIX: Final = "whsec_"
HEADER_ID: Final = "webhook-id"
HEADER_TIMESTAMP: Final = "webhook-timestamp"
HEADER_SIGNATURE: Final = "webhook-signature"
HEADER_STORE: Final = "footfall-store"
#: At most this many signatures in one header (rotation needs two).
MAX_SIGNATURES: Final = 8

_MSG_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def generate_secret(n_bytes: int = 32) -> str:
    """A fresh random secret, ``whsec_`` + base64 of ``n_bytes`` random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(n_bytes)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret.

    Raises:
        WireError: Not a ``whsec_`` secret of valid, non-empty base64.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise WireError(f"a secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise WireError(f"the secret is not base64: {exc}") from exc
    if not key:
        raise WireError("the secret is empty")
    return key


def _mac(secret: str, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(secret_key(secret), signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``<msg_id>.<timestamp>.<body>``."""
    return "v1," + base64.b64encode(_mac(secret, msg_id, timestamp, body)).decode()


def sign_headers(
    secrets_in_use: Sequence[str], msg_id: str, store_id: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """Every header of a batch request, signed with each secret.

    Args:
        secrets_in_use: The store's secrets (the new one first while rotating).
        msg_id: The batch id.
        store_id: The store.
        body: The exact bytes sent (the gzip-compressed batch).
        timestamp: Unix seconds, now.

    Returns:
        The headers, ``Content-Type`` and ``Content-Encoding`` included.

    Raises:
        WireError: No secret, or a malformed one.
    """
    if not secrets_in_use:
        raise WireError("at least one secret is needed to sign")
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: " ".join(sign(s, msg_id, timestamp, body) for s in secrets_in_use),
        HEADER_STORE: store_id,
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }


@dataclass(frozen=True)
class SignedHeaders:
    """The signature headers of a request, parsed (not yet verified)."""

    msg_id: str
    timestamp: int
    signatures: tuple[bytes, ...]
    signature_header: str


def parse_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """Read ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``.

    Signatures of another version than ``v1`` are skipped, as the spec says.

    Raises:
        SignatureError: A header is missing or malformed, or no ``v1`` signature.
        TimestampError: The timestamp is not integer seconds.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE) if not lower.get(h)]
    if missing:
        raise SignatureError(f"missing header {', '.join(missing)}")
    msg_id, stamp, header = lower[HEADER_ID], lower[HEADER_TIMESTAMP], lower[HEADER_SIGNATURE]
    if not _MSG_ID.fullmatch(msg_id):
        raise SignatureError(f"{HEADER_ID} {msg_id[:80]!r} is malformed")
    if not _TIMESTAMP.fullmatch(stamp):
        raise TimestampError(f"{HEADER_TIMESTAMP} {stamp[:40]!r} is not integer Unix seconds")
    tokens = header.split()
    if len(tokens) > MAX_SIGNATURES:
        raise SignatureError(f"{len(tokens)} signatures, at most {MAX_SIGNATURES}")
    found = []
    for token in tokens:
        version, comma, value = token.partition(",")
        if not comma:
            raise SignatureError(f"{HEADER_SIGNATURE} entry {token[:40]!r} is not VERSION,SIG")
        if version != "v1":
            continue
        try:
            found.append(base64.b64decode(value, validate=True))
        except binascii.Error as exc:
            raise SignatureError(f"{HEADER_SIGNATURE} entry is not base64: {exc}") from exc
    if not found:
        raise SignatureError(f"no v1 signature in {HEADER_SIGNATURE}")
    return SignedHeaders(msg_id, int(stamp), tuple(found), header)


def check_timestamp(timestamp: int, now_s: float, tolerance_s: int = TOLERANCE_S) -> None:
    """Refuse a signature time more than ``tolerance_s`` from ``now_s``.

    Raises:
        TimestampError: Outside the tolerance (the reason says by how much).
    """
    skew = timestamp - now_s
    if abs(skew) > tolerance_s:
        when = "ahead of" if skew > 0 else "behind"
        raise TimestampError(
            f"{HEADER_TIMESTAMP} is {abs(skew):.0f} s {when} the receiver's clock "
            f"(tolerance {tolerance_s} s)"
        )


def verify(secrets_in_use: Sequence[str], signed: SignedHeaders, body: bytes) -> int:
    """Check that some signature matches some secret (constant-time comparisons).

    Returns:
        The index in ``secrets_in_use`` of the secret that matched.

    Raises:
        SignatureError: None matches.
    """
    for index, secret in enumerate(secrets_in_use):
        expected = _mac(secret, signed.msg_id, signed.timestamp, body)
        if any(hmac.compare_digest(expected, s) for s in signed.signatures):
            return index
    raise SignatureError("no signature matches a secret of this store")
