"""The box's heartbeat to the hub, sent in the sync slot after the batches (or alone).

The facts come from the box (:class:`Agent`, handed to :class:`sync.Sender` by the
command line: ``appliance.box.heartbeat.BoxAgent``); this module signs them as a batch is
signed (every secret in use, a timestamp that never repeats; ``webhook-id`` is the
heartbeat id), ``POST`` s them to :data:`wire.heartbeat.HEARTBEAT_PATH` and reads the
hub's answer: an ack for the heartbeat's id and the store's downlink items.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import requests

from wire import Ack, DownlinkItem, WireError, decode_answer, sign_headers
from wire.heartbeat import HEARTBEAT_PATH, encode_heartbeat


class Agent(Protocol):
    """The box's side: what the heartbeat says, and acting on what the hub sent."""

    def facts(self) -> dict[str, Any]:
        """The heartbeat document (:mod:`wire.heartbeat`)."""

    def act(self) -> None:
        """Act on the downlink items stored so far (apply a config version …)."""


class HeartbeatError(Exception):
    """A heartbeat not delivered: the reason (``rejected``: the hub refused it, a 4xx)."""

    def __init__(self, reason: str, *, rejected: bool) -> None:
        super().__init__(reason)
        self.rejected = rejected


def send_heartbeat(
    session: requests.Session,
    url: str,
    secrets: tuple[str, ...],
    beat: dict[str, Any],
    timestamp: int,
    timeout_s: tuple[float, float],
    max_answer_bytes: int,
) -> tuple[Ack, list[DownlinkItem]]:
    """Sign and POST one heartbeat; the hub's ack and downlink items.

    Args:
        session: The HTTP session.
        url: The hub's base URL.
        secrets: The store's secrets in use.
        beat: The heartbeat document.
        timestamp: Unix seconds to sign with.
        timeout_s: ``(connect, read)`` seconds.
        max_answer_bytes: The most bytes of the answer read.

    Raises:
        HeartbeatError: Not delivered, refused, or not acknowledged.
        WireError: The facts are not a valid heartbeat (a bug of the box).
    """
    body = encode_heartbeat(beat)
    headers = sign_headers(secrets, beat["heartbeat_id"], beat["store_id"], body, timestamp)
    del headers["Content-Encoding"]  # plain JSON
    try:
        with session.post(url.rstrip("/") + HEARTBEAT_PATH, data=body, headers=headers,
                          timeout=timeout_s, stream=True) as response:  # fmt: skip
            answer = response.raw.read(max_answer_bytes + 1, decode_content=True)
    except requests.RequestException as exc:
        raise HeartbeatError(f"{type(exc).__name__}: {exc}", rejected=False) from exc
    if len(answer) > max_answer_bytes:
        raise HeartbeatError(f"the answer is over {max_answer_bytes} bytes", rejected=False)
    if response.status_code != 200:
        try:
            reason = str(json.loads(answer).get("error", ""))
        except (ValueError, AttributeError):
            reason = answer[:200].decode("utf-8", "replace")
        status = response.status_code
        raise HeartbeatError(f"HTTP {status}: {reason}", rejected=400 <= status < 500)
    try:
        ack, items = decode_answer(answer)
    except WireError as exc:
        raise HeartbeatError(f"the hub's answer is not an ack: {exc}", rejected=False) from exc
    if ack.batch_id != beat["heartbeat_id"]:
        raise HeartbeatError(f"the hub acknowledged {ack.batch_id!r}, not this heartbeat",
                             rejected=False)  # fmt: skip
    return ack, items
