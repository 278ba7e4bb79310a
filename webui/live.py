"""The Live page: the plan with everyone seen in the last seconds, zone counts, queues.

The state comes from :func:`appliance.live.snapshot`; positions are anonymous dots
(staff in another colour). The fragment polls every 2 s, only while the page is
visible (``static/app.js``).
"""

from __future__ import annotations

from appliance.live import snapshot

from webui.auth import requires
from webui.blueprint import bp, render_page, scope
from webui.db import read_db
from webui.floorplan import plan_of
from webui.periods import fmt_day_time, local

POLL_MS = 2000
WINDOW_S = 3.0


@bp.get("/live")
@requires("view")
def live() -> str:
    """The store now."""
    s = scope("today")
    snap = snapshot(read_db(), s.config, s.now_ms, window_s=WINDOW_S)
    queues = [
        (z.id, snap.queue_lengths.get(z.id, 0), snap.predicted_wait_s.get(z.id))
        for z in s.config.zones
        if z.kind == "queue"
    ]
    return render_page(
        "live.html", "live_fragment.html",
        s=s, snap=snap, plan=plan_of(s.config), queues=queues, poll_ms=POLL_MS,
        at=fmt_day_time(local(snap.t_ms, s.tz)) + f":{local(snap.t_ms, s.tz):%S}",
    )  # fmt: skip
