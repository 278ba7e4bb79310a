"""Signed JSON webhooks, delivered by a background thread with retries and backoff.

Each delivery is a POST of a JSON body with the headers

* ``X-Footfall-Signature: sha256=<hex>``: HMAC-SHA256 of the exact body bytes with the
  shared secret (compare it in constant time);
* ``X-Footfall-Timestamp``: UTC ms when the alert event was queued (also ``sent_ms``
  in the signed body; reject old ones to stop replays);
* ``X-Footfall-Delivery``: a random id, the same on every retry (deduplicate on it).

:meth:`WebhookSender.send` only queues, so the alert loop never waits for a network.
A failed attempt (connection error, timeout, non-2xx) is retried after
``retry_base_s``, doubling up to 300 s, at most ``max_attempts`` times; deliveries to
one URL keep their order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0
SIGNATURE_HEADER = "X-Footfall-Signature"
TIMESTAMP_HEADER = "X-Footfall-Timestamp"
DELIVERY_HEADER = "X-Footfall-Delivery"


def sign(body: bytes, secret: bytes) -> str:
    """The ``X-Footfall-Signature`` value of a body: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: bytes, signature: str) -> bool:
    """Whether a signature header matches the body (constant-time; for receivers and tests)."""
    return hmac.compare_digest(sign(body, secret), signature)


def envelope(payload: dict[str, Any], delivery_id: str, sent_ms: int) -> bytes:
    """The exact body POSTed (and signed): the payload with its delivery id and time."""
    return json.dumps(
        {"delivery_id": delivery_id, "sent_ms": sent_ms, **payload}, separators=(",", ":")
    ).encode()


class WebhookSender:
    """Delivers payloads to one URL from its own thread.

    Args:
        url: the endpoint.
        secret: the HMAC key.
        timeout_s: per attempt.
        max_attempts: tries per delivery.
        retry_base_s: first retry delay (doubles, at most 300 s).
        max_queue: deliveries waiting beyond this drop the oldest (logged).
    """

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 6,
        retry_base_s: float = 2.0,
        max_queue: int = 1000,
    ) -> None:
        if not secret:
            raise ValueError(f"webhook {url}: empty secret")
        self.url = url
        self._secret = secret
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._queue: queue.Queue[tuple[str, bytes, int]] = queue.Queue(max_queue)
        self._stop = threading.Event()
        self.delivered = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def send(self, payload: dict[str, Any]) -> str:
        """Queue a payload (``delivery_id`` and ``sent_ms`` are added); never blocks.

        Returns:
            The delivery id.
        """
        delivery = uuid.uuid4().hex
        sent_ms = int(time.time() * 1000)
        body = envelope(payload, delivery, sent_ms)
        while True:
            try:
                self._queue.put_nowait((delivery, body, sent_ms))
                return delivery
            except queue.Full:
                dropped = self._queue.get_nowait()
                logger.error("webhook %s: queue full, dropped delivery %s", self.url, dropped[0])

    def pending(self) -> int:
        """Deliveries queued and not finished."""
        return self._queue.unfinished_tasks

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (after the delivery in progress, if it ends within the timeout)."""
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delivery, body, sent_ms = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._deliver(delivery, body, sent_ms)
            finally:
                self._queue.task_done()

    def _deliver(self, delivery: str, body: bytes, sent_ms: int) -> None:
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(body, self._secret),
                TIMESTAMP_HEADER: str(sent_ms),
                DELIVERY_HEADER: delivery,
                "User-Agent": "footfall-alerts",
            },
        )
        delay = self._retry_base_s
        for attempt in range(1, self._max_attempts + 1):
            try:
                with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                    response.read()
                self.delivered += 1
                logger.debug("webhook %s: delivered %s (attempt %d)", self.url, delivery, attempt)
                return
            except (urllib.error.URLError, OSError) as exc:
                logger.warning(
                    "webhook %s: delivery %s attempt %d/%d failed: %s",
                    self.url,
                    delivery,
                    attempt,
                    self._max_attempts,
                    exc,
                )
            if attempt < self._max_attempts and self._stop.wait(delay):
                break
            delay = min(delay * 2, MAX_BACKOFF_S)
        self.failed += 1
        logger.error("webhook %s: gave up on delivery %s", self.url, delivery)
