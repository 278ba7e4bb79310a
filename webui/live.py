"""The Live page: the plan with everyone seen in the last seconds, zone counts, queues, alerts.

The state comes from :func:`appliance.analytics.live.snapshot` with one :class:`LiveCache` per
app, so a poll reads only the points written since the last one; positions are anonymous dots
(staff in another colour). The fragment polls every 2 s, only while the page is
visible (``static/app.js``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flask import current_app

from appliance.alerts import active_alerts
from appliance.analytics.live import LiveCache, LiveSnapshot, snapshot
from appliance.config import BoxConfig
from webui.auth import requires
from webui.blueprint import bp, render_page, scope
from webui.db import read_db
from webui.floorplan import plan_of
from webui.hours import open_now
from webui.periods import fmt_day_time, local

POLL_MS = 2000
WINDOW_S = 3.0
#: the share of ``store.capacity`` from which the light is amber; from 100 % it is red
AMBER_SHARE = 0.8


@dataclass(frozen=True)
class Occupancy:
    """Customers in the store now against its capacity, with a traffic light.

    Attributes:
        now: customers inside the floor plan now.
        capacity: ``store.capacity`` (None: not configured, no light).
    """

    now: int
    capacity: int | None

    @property
    def share_pct(self) -> float | None:
        """``now`` in % of the capacity (None without one)."""
        return None if not self.capacity else 100 * self.now / self.capacity

    @property
    def light(self) -> str:
        """``ok`` (green), ``warn`` (amber from 80 %), ``bad`` (red from 100 %), or ``none``."""
        if not self.capacity:
            return "none"
        share = self.now / self.capacity
        return "bad" if share >= 1 else ("warn" if share >= AMBER_SHARE else "ok")


def queue_rows(config: BoxConfig, snap: LiveSnapshot) -> list[tuple[str, int, float | None]]:
    """Each queue zone's length now and the predicted wait of someone joining it."""
    return [
        (z.id, snap.queue_lengths.get(z.id, 0), snap.predicted_wait_s.get(z.id))
        for z in config.zones
        if z.kind == "queue"
    ]


@dataclass
class _LiveState:
    """The app's one :class:`LiveCache`; snapshots take turns (the cache is not thread-safe)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    cache: LiveCache | None = None


def live_snapshot(config: BoxConfig, now_ms: int) -> LiveSnapshot:
    """The store at ``now_ms``, through the app's cache (only new rows are read)."""
    state: _LiveState = current_app.extensions.setdefault("footfall_live", _LiveState())
    with state.lock:
        if state.cache is None:
            state.cache = LiveCache(config)
        return snapshot(read_db(), config, now_ms, window_s=WINDOW_S, cache=state.cache)


@bp.get("/live")
@requires("view")
def live() -> str:
    """The store now."""
    s = scope("today")
    snap = live_snapshot(s.config, s.now_ms)
    return render_page(
        "live.html", "live_fragment.html",
        s=s, snap=snap, plan=plan_of(s.config), queues=queue_rows(s.config, snap), poll_ms=POLL_MS,
        occupancy=Occupancy(snap.store_occupancy, s.config.store.capacity),
        closed_text=open_now(s.config.store, s.now_ms).closed_text(s.tz),
        alerts=active_alerts(read_db(), s.store_id),
        at=fmt_day_time(local(snap.t_ms, s.tz)) + f":{local(snap.t_ms, s.tz):%S}",
    )  # fmt: skip
