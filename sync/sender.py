"""Sending the outbox to the hub: signed at send time, retried with backoff, advanced on ack.

One :meth:`Sender.push` sends batches (:mod:`sync.batches`) until the outbox is empty,
``max_batches`` are sent or its time budget (``run_budget_s``) is spent, so it never
holds the scheduler's slot for long. Each attempt signs the body afresh (Standard
Webhooks, every secret in use, a timestamp that never repeats) and ``POST``s it with
``requests`` (connect and read timeouts). The answer decides:

* ``200`` with an ack for the batch's id (``duplicate`` included): the marks advance
  (:func:`local_db.outbox.acknowledge`), the downlink items are verified
  (:func:`wire.verify_downlink`) and stored, accepted or rejected;
* no answer, a timeout, ``408``/``409``/``425``/``429`` or a ``5xx``: transient. The
  batch is kept, and the next attempt waits a full-jitter exponential backoff,
  ``uniform(0, min(cap_s, base_s * 2 ** (failures - 1)))``, remembered in the
  database (``retry_at_ms``), so scheduled runs skip until then, across restarts too;
* any other ``4xx``: the hub refused the batch (a signature, a schema, a store that
  does not match): it is logged with the hub's reason, kept, and retried only after
  ``rejected_retry_s``, or once at once by a new sender (a box restarted with a fixed
  config; ``footfall sync push``); the scheduled job raises :class:`HubRejectedError`
  so the box's health shows it until a human fixes it.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import requests

from local_db import connect, outbox
from sync.batches import ROW_BUDGET, next_batch
from sync.heartbeat import Agent, HeartbeatError, send_heartbeat
from sync.status import lag_s
from wire import (
    BATCH_PATH,
    Ack,
    DownlinkItem,
    SignatureError,
    WireError,
    decode_answer,
    sign_headers,
    verify_downlink,
)

logger = logging.getLogger(__name__)

#: The most bytes of an answer read (an ack and up to 100 downlink items).
MAX_ANSWER_BYTES: Final = 1 << 20
#: The most characters of the hub's reason kept (logged, stored, shown).
MAX_REASON_CHARS: Final = 500
#: Statuses that say "try again later" rather than "this batch is wrong".
TRANSIENT_STATUSES: Final = frozenset({408, 409, 425, 429})

State = Literal["synced", "partial", "backing_off", "unreachable", "rejected"]


@dataclass(frozen=True)
class HubTarget:
    """Where and as whom the box sends.

    Attributes:
        url: The hub's base URL (``https://hub.example``).
        store_id: The hub's id of this store (the batches' ``store_id``).
        local_store_id: The box's store id (whose rows are sent).
        secrets: The store's signing secrets (the new one first while rotating).
    """

    url: str
    store_id: str
    local_store_id: str
    secrets: tuple[str, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.secrets:
            raise ValueError("a hub target needs at least one secret")


@dataclass(frozen=True)
class Backoff:
    """Retries with exponential backoff and full jitter, capped.

    Attributes:
        base_s: The first retry's upper bound.
        cap_s: No wait is longer than this.
        attempts_per_run: At most this many attempts of one batch per push.
        rejected_retry_s: A refused batch is tried again only after this long.
    """

    base_s: float = 2.0
    cap_s: float = 600.0
    attempts_per_run: int = 4
    rejected_retry_s: float = 3600.0

    def delay_s(self, failures: int, rng: random.Random) -> float:
        """The wait after ``failures`` failed attempts in a row (≥ 1)."""
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2.0 ** min(failures - 1, 60)))


@dataclass(frozen=True)
class PushResult:
    """What one push did.

    Attributes:
        state: ``synced`` (nothing left), ``partial`` (the budget ran out first),
            ``backing_off`` (not tried: the backoff's wait is not over),
            ``unreachable`` (no answer or a transient one), ``rejected`` (a 4xx).
        batches: Batches acknowledged.
        rows: Their rows.
        duplicates: Of those batches, the ones the hub had applied before.
        attempts: HTTP requests made.
        downlink_accepted: Downlink items that verified.
        downlink_rejected: Downlink items that did not (dropped, logged).
        error: The last failure's reason.
    """

    state: State
    batches: int = 0
    rows: int = 0
    duplicates: int = 0
    attempts: int = 0
    downlink_accepted: int = 0
    downlink_rejected: int = 0
    error: str | None = None


class HubRejectedError(RuntimeError):
    """The hub refused a batch with a 4xx: a human must look (signature, schema, store)."""


class _TransientError(Exception):
    """An attempt failed in a way worth retrying."""


class _RejectedError(Exception):
    """The hub refused the batch."""


@dataclass
class _Run:
    """Counters of one push."""

    batches: int = 0
    rows: int = 0
    duplicates: int = 0
    attempts: int = 0
    accepted: int = 0
    rejected: int = 0

    def result(self, state: State, error: str | None = None) -> PushResult:
        return PushResult(state, self.batches, self.rows, self.duplicates, self.attempts,
                          self.accepted, self.rejected, error)  # fmt: skip


def _reason(response: requests.Response, body: bytes) -> str:
    """The hub's ``{"error": …, "path": …}``, else the start of the body (bounded)."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        error, path = str(document["error"]), document.get("path")
        reason = error + (f" at {path}" if isinstance(path, str) and path else "")
        return reason[:MAX_REASON_CHARS]
    text = body[:MAX_REASON_CHARS].decode("utf-8", "replace").strip()
    return text or response.reason or "no reason given"


class Sender:
    """Pushes one store's outbox to the hub: one push at a time, ``lag_s`` from any thread.

    Args:
        db_path: The box's SQLite file (migrated).
        target: The hub and the store's identity there.
        timeout_s: ``(connect, read)`` seconds per request.
        backoff: The retry policy.
        run_budget_s: A push stops starting new attempts after this long.
        budget_rows: Rows a new batch aims at.
        session: The HTTP session (default: a new one).
        clock: UTC seconds (signatures, backoff, the lag).
        sleep: Waits between attempts.
        rng: The jitter's randomness.
        agent: The box's heartbeat facts and downlink actions (a heartbeat follows each
            scheduled push; :meth:`beat`).
    """

    def __init__(
        self,
        db_path: Path,
        target: HubTarget,
        *,
        timeout_s: tuple[float, float] = (5.0, 60.0),
        backoff: Backoff | None = None,
        run_budget_s: float = 60.0,
        budget_rows: int = ROW_BUDGET,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        agent: Agent | None = None,
    ) -> None:
        self.db_path = db_path
        self.target = target
        self.timeout_s = timeout_s
        self.backoff = backoff or Backoff()
        self.run_budget_s = run_budget_s
        self.budget_rows = budget_rows
        self._session = session or requests.Session()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._last_timestamp = 0
        self._body: tuple[str, bytes] | None = None  # the pending batch's, built once
        self._refused = False  # this sender had a refusal (a new one tries once at start)
        self._url = target.url.rstrip("/") + BATCH_PATH
        self.agent = agent

    def _now_ms(self) -> int:
        return round(self._clock() * 1000)

    # --- the scheduler's job and health -------------------------------------------------

    def __call__(self) -> PushResult:
        """The scheduled ``sync`` job: one push.

        Raises:
            HubRejectedError: The hub refused the batch (health shows the job failed).
        """
        result = self.push()
        self.beat()
        if result.state == "rejected":
            raise HubRejectedError(f"the hub refused the pending batch: {result.error}")
        return result

    def beat(self) -> str | None:
        """Act on the downlink, send a heartbeat, act on its answer's downlink.

        Returns:
            None when delivered (or there is no agent), else why not (logged).
        """
        if self.agent is None:
            return None
        self.agent.act()
        beat = self.agent.facts()
        try:
            _ack, items = send_heartbeat(
                self._session, self.target.url, self.target.secrets, beat, self._timestamp(),
                self.timeout_s, MAX_ANSWER_BYTES,
            )  # fmt: skip
        except HeartbeatError as exc:
            logger.warning("sync: heartbeat %s not delivered%s: %s", beat["heartbeat_id"],
                           " (refused)" if exc.rejected else "", exc)  # fmt: skip
            return str(exc)
        with closing(connect(self.db_path)) as conn:
            outbox.record_downlink(
                conn, self.target.store_id, [self._verified(i) for i in items], self._now_ms()
            )
        self.agent.act()
        return None

    def lag_s(self) -> float | None:
        """Seconds since the oldest write the hub has not acknowledged (0: all sent).

        None when the database cannot be read (for ``health.register_sync_lag``).
        """
        try:
            with closing(connect(self.db_path, readonly=True)) as conn:
                return lag_s(conn, self.target.local_store_id, self.target.store_id, self._now_ms())
        except sqlite3.Error as exc:
            logger.debug("sync lag unknown: %s", exc)
            return None

    # --- pushing ------------------------------------------------------------------------

    def push(self, *, max_batches: int | None = None, force: bool = False) -> PushResult:
        """Send batches until the outbox is empty, ``max_batches`` or the time budget.

        Args:
            max_batches: Stop after this many acknowledged batches.
            force: Try now even if the backoff's wait is not over (``footfall sync push``).

        Returns:
            What was done, and the state it ended in.
        """
        store, target = self.target.local_store_id, self.target.store_id
        deadline = self._clock() + self.run_budget_s
        run = _Run()
        with closing(connect(self.db_path)) as conn:
            state = outbox.sync_state(conn, store, target)
            if not force and self._backing_off(state):
                return run.result("backing_off", state.error)
            failures = state.failures
            while True:
                enough = max_batches is not None and run.batches >= max_batches
                if enough or (run.batches and self._clock() >= deadline):
                    left = outbox.oldest_unacknowledged_ms(conn, store, target) is not None
                    return run.result("partial" if left else "synced")
                found = self._next_batch(conn)
                if found is None:
                    return run.result("synced")
                pending, body = found
                outcome, failures = self._deliver(conn, run, pending, body, failures, deadline)
                if outcome is not None:
                    return outcome

    def _next_batch(self, conn: sqlite3.Connection) -> tuple[outbox.PendingBatch, bytes] | None:
        """The pending batch and its body, else a new one.

        The body is kept between attempts: a bucket rewritten since is in it with its old
        revision, which the hub replaces when the new one comes in a later batch.
        """
        store, target = self.target.local_store_id, self.target.store_id
        pending = outbox.pending_batch(conn, store, target)
        if pending is not None and self._body is not None and self._body[0] == pending.batch_id:
            return pending, self._body[1]
        found = next_batch(conn, store, target, self._now_ms(), self.budget_rows)
        self._body = None if found is None else (found[0].batch_id, found[1])
        return found

    def _backing_off(self, state: outbox.SyncState) -> bool:
        if state.retry_at_ms is None or (state.rejected and not self._refused):
            return False
        wait_ms = state.retry_at_ms - self._now_ms()
        longest_ms = 1000 * max(self.backoff.cap_s, self.backoff.rejected_retry_s)
        # a wait longer than any backoff was set under another clock (it was fixed since)
        return 0 < wait_ms <= longest_ms

    def _deliver(
        self,
        conn: sqlite3.Connection,
        run: _Run,
        pending: outbox.PendingBatch,
        body: bytes,
        failures: int,
        deadline: float,
    ) -> tuple[PushResult | None, int]:
        """Send one batch until acked, refused, or out of attempts; (outcome or None, failures)."""
        attempt = 0
        while True:
            attempt += 1
            run.attempts += 1
            try:
                ack, items = self._attempt(pending.batch_id, body)
            except _RejectedError as exc:
                retry_s = self.backoff.rejected_retry_s
                self._refused = True
                self._fail(conn, str(exc), retry_s, rejected=True)
                logger.warning(
                    "sync: the hub refused batch %s (%d rows): %s; kept, next try in %.0f s",
                    pending.batch_id, pending.rows, exc, retry_s,
                )  # fmt: skip
                return run.result("rejected", str(exc)), failures + 1
            except _TransientError as exc:
                failures += 1
                delay = self.backoff.delay_s(failures, self._rng)
                self._fail(conn, str(exc), delay, rejected=False)
                logger.warning(
                    "sync: batch %s not delivered (attempt %d, %d in a row): %s; next try in "
                    "%.1f s", pending.batch_id, attempt, failures, exc, delay,
                )  # fmt: skip
                if attempt >= self.backoff.attempts_per_run or self._clock() + delay > deadline:
                    return run.result("unreachable", str(exc)), failures
                self._sleep(delay)
                continue
            self._acknowledged(conn, run, pending, ack, items)
            return None, 0

    def _fail(
        self, conn: sqlite3.Connection, error: str, retry_s: float, *, rejected: bool
    ) -> None:
        now = self._now_ms()
        outbox.record_failure(
            conn, self.target.local_store_id, self.target.store_id, error, now,
            retry_at_ms=now + round(retry_s * 1000), rejected=rejected,
        )  # fmt: skip

    def _timestamp(self) -> int:
        """Unix seconds to sign with, never the same twice (a retry is not a replay)."""
        self._last_timestamp = max(int(self._clock()), self._last_timestamp + 1)
        return self._last_timestamp

    def _attempt(self, batch_id: str, body: bytes) -> tuple[Ack, list[DownlinkItem]]:
        """One signed POST; the ack and downlink items, or a classified failure."""
        headers = sign_headers(
            self.target.secrets, batch_id, self.target.store_id, body, self._timestamp()
        )
        try:
            with self._session.post(
                self._url, data=body, headers=headers, timeout=self.timeout_s, stream=True
            ) as response:
                answer = self._read(response)
        except requests.RequestException as exc:
            raise _TransientError(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status != 200:
            reason = f"HTTP {status}: {_reason(response, answer)}"
            if status in TRANSIENT_STATUSES or status >= 500 or status < 400:
                raise _TransientError(reason)
            raise _RejectedError(reason)
        try:
            ack, items = decode_answer(answer)
        except WireError as exc:
            raise _TransientError(f"the hub's answer is not an ack: {exc}") from exc
        if ack.batch_id != batch_id:
            raise _TransientError(f"the hub acknowledged batch {ack.batch_id!r}, not this one")
        return ack, items

    @staticmethod
    def _read(response: requests.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(65536):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise _TransientError(f"the hub's answer is over {MAX_ANSWER_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _acknowledged(
        self,
        conn: sqlite3.Connection,
        run: _Run,
        pending: outbox.PendingBatch,
        ack: Ack,
        items: Sequence[DownlinkItem],
    ) -> None:
        store, target = self.target.local_store_id, self.target.store_id
        now = self._now_ms()
        if not outbox.acknowledge(conn, store, target, pending.batch_id, now):
            logger.info("sync: batch %s was acknowledged by another sender", pending.batch_id)
        run.batches += 1
        run.rows += pending.rows
        run.duplicates += ack.duplicate
        logger.info(
            "sync: batch %s acknowledged: %d rows sent, %d applied%s",
            pending.batch_id, pending.rows, ack.applied_rows,
            " (a duplicate: applied before)" if ack.duplicate else "",
        )  # fmt: skip
        records = [self._verified(item) for item in items]
        outbox.record_downlink(conn, target, records, now)
        run.accepted += sum(r.accepted for r in records)
        run.rejected += sum(not r.accepted for r in records)

    def _verified(self, item: DownlinkItem) -> outbox.DownlinkRecord:
        try:
            verify_downlink(self.target.secrets, item)
        except SignatureError as exc:
            logger.warning("sync: downlink item rejected: %s", exc.reason)
            return outbox.DownlinkRecord(item.kind, item.id, None, False, exc.reason)
        logger.info("sync: downlink %s %r accepted", item.kind, item.id)
        return outbox.DownlinkRecord(item.kind, item.id, item.payload, True)
