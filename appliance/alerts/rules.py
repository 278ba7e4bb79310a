"""Rule evaluation: hysteresis, minimum duration, cooldown and active hours, per target.

Each (rule, target) is a small state machine:

* idle → pending when the value reaches ``raise_at`` (``>=``, or ``<=`` for the
  falling kinds ``zone_occupancy_below`` and ``disk_low``); pending → idle as soon as
  it no longer does;
* pending → **raise** once it has held ``min_duration_s`` and ``cooldown_s`` has passed
  since this target's last raise;
* active → **clear** when the value reaches ``clear_at`` (values between the two
  thresholds change nothing, so jitter around either threshold cannot flap);
* outside the rule's ``active_hours`` nothing raises and an active alert clears;
* an unknown value (None) holds the state (and restarts a pending duration).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from appliance.alerts.measures import Inputs, Measures, local_time
from appliance.analytics.live import LiveSnapshot
from appliance.config import DAYS, ActiveHours, AlertRule

logger = logging.getLogger(__name__)

_UNITS = {
    "queue_length": "people",
    "predicted_wait": "s",
    "density": "people/m²",
    "store_occupancy": "people",
    "zone_occupancy_above": "people",
    "zone_occupancy_below": "people",
    "staffing_gap": "s without staff",
    "customers_per_staff": "customers per staff",
    "camera_down": "(1 = down)",
    "sync_lag": "s",
    "disk_low": "GB free",
}


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert raised or cleared.

    Attributes:
        action: ``raise`` or ``clear``.
        rule: the rule.
        target: the zone or camera, ``""`` for the store or the box.
        t_ms: when (UTC ms).
        value: the measured value then (None: cleared for another reason).
        message: one line for people.
    """

    action: Literal["raise", "clear"]
    rule: AlertRule
    target: str
    t_ms: int
    value: float | None
    message: str


@dataclass(slots=True)
class _TargetState:
    pending_since: int | None = None
    active: bool = False
    last_raise_ms: int | None = None


@dataclass
class AlertState:
    """The memory of :func:`evaluate` between ticks (one per engine)."""

    targets: dict[tuple[str, str], _TargetState] = field(default_factory=dict)
    measures: Measures = field(default_factory=Measures)

    def restore(self, rule_id: str, target: str, raised_ms: int) -> None:
        """Mark an alert found active in the log (after a restart) as active."""
        state = self.targets.setdefault((rule_id, target), _TargetState())
        state.active, state.last_raise_ms = True, raised_ms

    def active(self) -> list[tuple[str, str]]:
        """``(rule_id, target)`` of every active alert."""
        return [key for key, s in self.targets.items() if s.active]

    def drop(self, rule_id: str) -> None:
        """Forget a rule (removed or changed by a reload)."""
        for key in [k for k in self.targets if k[0] == rule_id]:
            del self.targets[key]


def in_active_hours(hours: ActiveHours, local: datetime) -> bool:
    """Whether a store-local time is inside ``hours`` (``end`` before ``start``: overnight)."""
    minute = local.hour * 60 + local.minute
    start = int(hours.start[:2]) * 60 + int(hours.start[3:])
    end = int(hours.end[:2]) * 60 + int(hours.end[3:])
    if DAYS[local.weekday()] not in hours.days:
        return False
    return start <= minute < end if start < end else (minute >= start or minute < end)


def describe(rule: AlertRule, target: str, value: float | None) -> str:
    """A one-line message: what, where, how much, and the threshold."""
    where = f" at {target}" if target else ""
    if rule.kind == "camera_down":
        return f"camera {target} is down" if value else f"camera {target} is up"
    unit = "% of capacity" if rule.of_capacity else f" {_UNITS[rule.kind]}"
    shown = "unknown" if value is None else f"{value:.3g}{unit}"
    return f"{rule.kind.replace('_', ' ')}{where}: {shown} (raise at {rule.raise_at:g})"


def _step(
    rule: AlertRule,
    target: str,
    st: _TargetState,
    value: float | None,
    now_ms: int,
    in_hours: bool,
) -> Transition | None:
    if not in_hours or value is None:
        st.pending_since = None
        if st.active and not in_hours:
            st.active = False
            return Transition(
                "clear", rule, target, now_ms, value, f"{rule.id}: outside active hours"
            )
        return None
    falling = rule.falling
    if st.active:
        if (value >= rule.clear_at) if falling else (value <= rule.clear_at):
            st.active = False
            return Transition("clear", rule, target, now_ms, value, describe(rule, target, value))
        return None
    if not ((value <= rule.raise_at) if falling else (value >= rule.raise_at)):
        st.pending_since = None
        return None
    if st.pending_since is None:
        st.pending_since = now_ms
    if now_ms - st.pending_since < rule.min_duration_s * 1000:
        return None
    if st.last_raise_ms is not None and now_ms - st.last_raise_ms < rule.cooldown_s * 1000:
        return None
    st.active, st.pending_since, st.last_raise_ms = True, None, now_ms
    return Transition("raise", rule, target, now_ms, value, describe(rule, target, value))


def evaluate(
    rules: Sequence[AlertRule],
    snapshot: LiveSnapshot,
    state: AlertState,
    now_ms: int,
    *,
    inputs: Inputs,
) -> list[Transition]:
    """Advance every rule's targets to ``now_ms``; return the alerts raised and cleared.

    Args:
        rules: the rules.
        snapshot: the live state at ``now_ms``.
        state: the memory of earlier calls (updated).
        now_ms: the moment (UTC ms); calls must not go back in time.
        inputs: config, system state and roster.
    """
    local = local_time(inputs.config, now_ms)
    out = []
    for rule in rules:
        in_hours = in_active_hours(rule.active_hours, local)
        for target, value in state.measures.values(rule, snapshot, inputs, now_ms).items():
            st = state.targets.setdefault((rule.id, target), _TargetState())
            transition = _step(rule, target, st, value, now_ms, in_hours)
            if transition is not None:
                logger.info("alert %s %s: %s", transition.action, rule.id, transition.message)
                out.append(transition)
    return out
