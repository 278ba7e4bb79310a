"""Ops alerts: a box that goes offline or degrades, raised once and cleared once, notified.

:func:`check_fleet` evaluates every store (:func:`cloud_hub.heartbeats.fleet`) and keeps
``fleet_alerts`` with hysteresis:

* ``offline`` is raised only after the offline threshold without a heartbeat, and cleared
  after :data:`CLEAR_AFTER` heartbeats newer than the last one before the silence;
* ``degraded`` is raised when the box reports degraded (or rejected a config) while it is
  reporting, and cleared only after its :data:`CLEAR_AFTER` newest heartbeats are all ok.

Each transition is notified once to each destination (a webhook signed as Standard
Webhooks with :func:`wire.sign`, and e-mail over SMTP): a notification is claimed in the
database before it is sent (a conditional update, so two hub processes never send it
twice) and released again if sending failed, to be retried by the next check.

It runs as a thread of ``footfall hub serve`` (:class:`FleetWatch`, every
``FOOTFALL_HUB_FLEET_CHECK_S`` seconds, default 60) when a destination is configured
(``FOOTFALL_HUB_ALERT_WEBHOOK_URL`` with ``FOOTFALL_HUB_ALERT_WEBHOOK_SECRET``, and/or
``FOOTFALL_HUB_SMTP`` ``host:port`` with ``FOOTFALL_HUB_ALERT_MAIL_FROM`` and
``FOOTFALL_HUB_ALERT_MAIL_TO``, comma-separated): the hub is already running, the alert
state lives in the database, and a timer and unit more would be one more thing to deploy.
"""

from __future__ import annotations

import json
import logging
import smtplib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Final, Protocol

import requests
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import SQLAlchemyError

from cloud_hub import heartbeats, rollouts
from cloud_hub.schema import fleet_alerts
from wire import HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, sign

logger = logging.getLogger(__name__)

#: Heartbeats that clear an alert (back to ok only after this many good ones).
CLEAR_AFTER: Final = 2
#: Seconds between two checks of :class:`FleetWatch`.
CHECK_EVERY_S: Final = 60.0


@dataclass(frozen=True)
class AlertEvent:
    """One transition to notify: ``raised`` or ``cleared``."""

    alert_id: int
    event: str
    store_id: str
    kind: str
    reason: str
    raised_ms: int
    cleared_ms: int | None

    def document(self) -> dict[str, object]:
        """The event as the webhook's JSON body."""
        return {"type": f"fleet.alert.{self.event}", "alert_id": self.alert_id,
                "store_id": self.store_id, "kind": self.kind, "reason": self.reason,
                "raised_ms": self.raised_ms, "cleared_ms": self.cleared_ms}  # fmt: skip


class Notifier(Protocol):
    """A destination of ops alerts."""

    name: str

    def send(self, event: AlertEvent) -> None:
        """Deliver one event; raise on failure (it is retried by the next check)."""


@dataclass
class WebhookNotifier:
    """POSTs each event as JSON, signed as Standard Webhooks with the shared secret."""

    url: str
    secret: str = field(repr=False)
    timeout_s: float = 10.0
    clock: Callable[[], float] = time.time
    name: str = "webhook"

    def send(self, event: AlertEvent) -> None:
        """POST the event; raise ``requests.RequestException`` or ``RuntimeError`` on failure."""
        body = json.dumps(event.document(), separators=(",", ":")).encode()
        msg_id, timestamp = f"fleet-{event.alert_id}-{event.event}", int(self.clock())
        headers = {HEADER_ID: msg_id, HEADER_TIMESTAMP: str(timestamp),
                   HEADER_SIGNATURE: sign(self.secret, msg_id, timestamp, body),
                   "Content-Type": "application/json"}  # fmt: skip
        answer = requests.post(self.url, data=body, headers=headers, timeout=self.timeout_s)
        if not 200 <= answer.status_code < 300:
            raise RuntimeError(f"{self.url} answered HTTP {answer.status_code}")


@dataclass
class MailNotifier:
    """Sends each event as a plain-text e-mail over SMTP."""

    host: str
    port: int
    sender: str
    recipients: Sequence[str]
    timeout_s: float = 10.0
    name: str = "e-mail"

    def send(self, event: AlertEvent) -> None:
        """Send the e-mail; raise ``OSError``/``smtplib.SMTPException`` on failure."""
        message = EmailMessage()
        message["From"], message["To"] = self.sender, ", ".join(self.recipients)
        message["Subject"] = f"footfall: box {event.store_id} {event.kind} {event.event}"
        message.set_content(
            f"Store {event.store_id}: {event.kind} alert {event.event}.\nReason: {event.reason}\n"
        )
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            smtp.send_message(message)


def _open(conn: Connection, store_id: str) -> dict[str, tuple[int, int]]:
    """The store's open alerts: kind → (id, the box's newest heartbeat when raised)."""
    return {
        r.kind: (int(r.id), int(r.seen_ms or 0))
        for r in conn.execute(
            select(fleet_alerts.c.id, fleet_alerts.c.kind, fleet_alerts.c.seen_ms).where(
                fleet_alerts.c.store_id == store_id, fleet_alerts.c.cleared_ms.is_(None)
            )
        )
    }


def _evaluate(conn: Connection, box: heartbeats.BoxStatus, now_ms: int) -> None:
    """Raise or clear the store's alerts (one transaction)."""
    open_alerts = _open(conn, box.store_id)
    wanted = {"offline"} if box.status == "offline" else set()
    if box.status == "degraded":
        wanted.add("degraded")
    for kind in sorted(wanted - set(open_alerts)):
        row = {"store_id": box.store_id, "kind": kind, "reason": box.reason[:2000],
               "raised_ms": now_ms, "seen_ms": box.last_seen_ms}  # fmt: skip
        conn.execute(fleet_alerts.insert().values(row))
        logger.warning("fleet: %s %s: %s", box.store_id, kind, box.reason)
    for kind, (alert_id, seen_ms) in open_alerts.items():
        if kind in wanted:
            continue
        # offline: heartbeats since the one before it went silent; degraded: the newest
        newer = heartbeats.recent_statuses(conn, box.store_id, seen_ms if kind == "offline" else 0)
        cleared = len(newer) >= CLEAR_AFTER and (
            kind == "offline" or all(s == "ok" for s in newer[:CLEAR_AFTER])
        )
        if cleared:
            conn.execute(fleet_alerts.update().where(fleet_alerts.c.id == alert_id)
                         .values(cleared_ms=now_ms))  # fmt: skip
            logger.info("fleet: %s %s cleared", box.store_id, kind)


def _unsent(conn: Connection) -> list[AlertEvent]:
    rows = conn.execute(
        select(fleet_alerts)
        .where(
            fleet_alerts.c.raise_sent_ms.is_(None)
            | (fleet_alerts.c.cleared_ms.is_not(None) & fleet_alerts.c.clear_sent_ms.is_(None))
        )
        .order_by(fleet_alerts.c.id)
    )
    events = []
    for r in rows:
        if r.raise_sent_ms is None:
            events.append(AlertEvent(r.id, "raised", r.store_id, r.kind, r.reason, r.raised_ms,
                                     None))  # fmt: skip
        if r.cleared_ms is not None and r.clear_sent_ms is None:
            events.append(AlertEvent(r.id, "cleared", r.store_id, r.kind, r.reason, r.raised_ms,
                                     r.cleared_ms))  # fmt: skip
    return events


def _claim(engine: Engine, event: AlertEvent, value: int | None) -> bool:
    column = (
        fleet_alerts.c.raise_sent_ms if event.event == "raised" else fleet_alerts.c.clear_sent_ms
    )
    with engine.begin() as conn:
        query = fleet_alerts.update().where(fleet_alerts.c.id == event.alert_id)
        query = query.where(column.is_(None) if value is not None else column.is_not(None))
        return bool(conn.execute(query.values({column.name: value})).rowcount)


def _notify(engine: Engine, notifiers: Sequence[Notifier], now_ms: int) -> int:
    """Send every unsent transition once; the number sent."""
    with engine.connect() as conn:
        events = _unsent(conn)
    sent = 0
    for event in events:
        if not _claim(engine, event, now_ms):
            continue  # another process took it
        try:
            for notifier in notifiers:
                notifier.send(event)
        except (OSError, smtplib.SMTPException, requests.RequestException, RuntimeError) as exc:
            logger.warning("fleet: alert %d %s not notified (retried at the next check): %s",
                           event.alert_id, event.event, exc)  # fmt: skip
            _claim(engine, event, None)
            continue
        sent += 1
    return sent


def check_fleet(
    engine: Engine, now_ms: int, offline_after_ms: int, notifiers: Sequence[Notifier] = ()
) -> int:
    """Evaluate every box, keep the alerts, notify their transitions.

    Args:
        engine: The hub's database.
        now_ms: The hub's clock.
        offline_after_ms: No heartbeat for longer than this is offline.
        notifiers: Where transitions are sent.

    Returns:
        The transitions notified.
    """
    with engine.begin() as conn:
        for box in heartbeats.fleet(conn, heartbeats.all_stores(conn), now_ms, offline_after_ms):
            _evaluate(conn, box, now_ms)
    return _notify(engine, notifiers, now_ms) if notifiers else 0


def notifiers_from_env(environ: Mapping[str, str]) -> list[Notifier]:
    """The destinations the environment configures (see the module's docstring).

    Raises:
        ValueError: A destination half configured, or a malformed ``host:port``.
    """
    found: list[Notifier] = []
    url = environ.get("FOOTFALL_HUB_ALERT_WEBHOOK_URL", "")
    if url:
        secret = environ.get("FOOTFALL_HUB_ALERT_WEBHOOK_SECRET", "")
        if not secret:
            raise ValueError(
                "FOOTFALL_HUB_ALERT_WEBHOOK_URL needs FOOTFALL_HUB_ALERT_WEBHOOK_SECRET"
            )
        found.append(WebhookNotifier(url, secret))
    smtp = environ.get("FOOTFALL_HUB_SMTP", "")
    if smtp:
        host, _, port = smtp.rpartition(":")
        sender = environ.get("FOOTFALL_HUB_ALERT_MAIL_FROM", "")
        to = [a.strip() for a in environ.get("FOOTFALL_HUB_ALERT_MAIL_TO", "").split(",")]
        if not host or not port.isdigit() or not sender or not any(to):
            raise ValueError("FOOTFALL_HUB_SMTP needs host:port, FOOTFALL_HUB_ALERT_MAIL_FROM "
                             "and FOOTFALL_HUB_ALERT_MAIL_TO")  # fmt: skip
        found.append(MailNotifier(host, int(port), sender, [a for a in to if a]))
    return found


class FleetWatch(threading.Thread):
    """``hub serve``'s thread: the rollouts and the ops alerts, every ``every_s``.

    Each turn moves the rollouts on (:func:`cloud_hub.rollouts.advance`: soak timers,
    forecast checks) and, when there is somewhere to send ops alerts, runs
    :func:`check_fleet`, until stopped.
    """

    def __init__(
        self, engine: Engine, offline_after_ms: int, notifiers: Sequence[Notifier],
        every_s: float = CHECK_EVERY_S, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        super().__init__(name="fleet-watch", daemon=True)
        self.engine, self.offline_after_ms, self.notifiers = engine, offline_after_ms, notifiers
        self.every_s, self._clock = every_s, clock
        self.stopped = threading.Event()

    def run(self) -> None:
        """Check, then wait; a database failure is logged and retried at the next turn."""
        while not self.stopped.is_set():
            now_ms = round(self._clock() * 1000)
            try:
                with self.engine.begin() as conn:
                    rollouts.advance(conn, now_ms)
                if self.notifiers:
                    check_fleet(self.engine, now_ms, self.offline_after_ms, self.notifiers)
            except SQLAlchemyError as exc:
                logger.warning("fleet check failed (retried in %.0f s): %s", self.every_s, exc)
            self.stopped.wait(self.every_s)
