"""Staged rollouts: a release version to groups of stores, one group after another.

A rollout (:func:`create_rollout`) names a version of a channel of the release repository
(:mod:`cloud_hub.releases`) and its groups: stores by id (the canaries) or a cumulative
share of the eligible stores (``25%``: a quarter of them in all, picked in an order fixed
by the rollout's id). Its first group starts at once. A started group's stores get a
``software_update`` downlink item (:func:`provider`) until their box reports the outcome
(``POST /api/v1/update-report``, :func:`record_report`); a box whose heartbeat already
reports the version counts as done. :func:`advance` (run on each report and heartbeat of
a rollout's store, and by the fleet's thread) then, for each running rollout:

* **pauses it** when a started group's failure rate passes ``max_failure_rate``: boxes
  that rolled back, refused or failed, and (``forecast_check``, on the fleet's thread's
  turns) updated boxes whose footfall left the store's forecast interval in most of the
  hours since they updated (:func:`forecast_departure`), which catches a detector that
  boots, reports healthy and counts wrong;
* waits while a box of the newest group has not reported;
* starts the next group once every box of the newest one updated and ``soak_min`` minutes
  passed since the last of them, or marks the rollout done after the last group.

An operator may pause, resume (the failed boxes are asked again) or abort a rollout
(:func:`act`). The forecast interval is the store's own history: the same hour of the week
in the last :data:`HISTORY_WEEKS` weeks that the box analysed, from the lowest to the highest
count, widened by two standard deviations of Poisson noise.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, and_, func, insert, select, update

from cloud_hub.schema import (
    HOURLY,
    box_heartbeats,
    rollout_groups,
    rollout_stores,
    rollouts,
    stores,
)
from wire.update_report import UpdateReport

logger = logging.getLogger(__name__)

KIND: Final = "software_update"
HOUR_MS: Final = 3_600_000
WEEK_MS: Final = 7 * 24 * HOUR_MS
#: Weeks of history the forecast interval is drawn from, and the fewest it needs.
HISTORY_WEEKS: Final = 8
MIN_HISTORY: Final = 4
#: Hours a store must have been measured since its update before it can be judged.
MIN_HOURS: Final = 3
#: The most recent hours since an update the check looks at.
CHECK_HOURS: Final = 24
FAILED: Final = ("rolled_back", "refused", "failed")
DONE: Final = ("installed", "current")
STATES: Final = ("running", "paused", "aborted", "done")
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}")
_SHARE: Final = re.compile(r"(\d{1,3}(?:\.\d+)?)%")


class RolloutError(ValueError):
    """A rollout that cannot be made or acted on, with the reason."""


@dataclass(frozen=True)
class GroupSpec:
    """One group as given: a name and either store ids or a cumulative share (0–1]."""

    name: str
    store_ids: tuple[str, ...] = ()
    share: float | None = None


def parse_group(text: str, position: int) -> GroupSpec:
    """``canary=s1,s2``, ``25%``, ``half=50%``; the name defaults to ``group N``.

    Raises:
        RolloutError: A bad name, share or empty group.
    """
    name, _, spec = text.rpartition("=")
    name = name.strip() or f"group {position + 1}"
    if not _NAME.fullmatch(name):
        raise RolloutError(f"group {text!r}: {name!r} is not a group name")
    spec = spec.strip()
    share = _SHARE.fullmatch(spec)
    if share:
        value = float(share[1]) / 100
        if not 0 < value <= 1:
            raise RolloutError(f"group {text!r}: a share is over 0% and at most 100%")
        return GroupSpec(name, share=value)
    ids = tuple(s.strip() for s in spec.split(",") if s.strip())
    if not ids:
        raise RolloutError(f"group {text!r}: give store ids (a,b) or a share (25%)")
    return GroupSpec(name, store_ids=ids)


def _order(rollout_id: int, store_id: str) -> str:
    return hashlib.sha256(f"{rollout_id}:{store_id}".encode()).hexdigest()


def _assign(rollout_id: int, groups: Sequence[GroupSpec], eligible: Sequence[str],
            known: set[str]) -> list[tuple[str, int]]:  # fmt: skip
    """Each store's group position; explicit ids first, then shares of the rest."""
    placed: dict[str, int] = {}
    for position, group in enumerate(groups):
        for store_id in group.store_ids:
            if store_id not in known:
                raise RolloutError(f"group {group.name!r}: no store {store_id!r}")
            if store_id in placed:
                raise RolloutError(f"store {store_id!r} is in two groups")
            placed[store_id] = position
    rest = sorted((s for s in eligible if s not in placed), key=lambda s: _order(rollout_id, s))
    total, taken = len(eligible), len(placed)
    for position, group in enumerate(groups):
        if group.share is None:
            continue
        want = max(math.ceil(group.share * total) - taken, 0)
        for store_id in rest[:want]:
            placed[store_id] = position
        rest, taken = rest[want:], taken + min(want, len(rest))
    counts = Counter(placed.values())
    empty = [g.name for p, g in enumerate(groups) if counts[p] == 0]
    if empty:
        raise RolloutError(f"group {empty[0]!r} has no store (the groups before took them)")
    return sorted(placed.items(), key=lambda item: (item[1], item[0]))


def create_rollout(
    conn: Connection,
    version: str,
    groups: Sequence[GroupSpec],
    now_ms: int,
    *,
    channel: str = "stable",
    regions: Sequence[str] = (),
    max_failure_rate: float = 0.0,
    soak_min: float = 30.0,
    forecast_check: bool = True,
    author: str = "cli",
) -> int:
    """Make a rollout and start its first group; its id.

    Args:
        conn: A connection in a transaction.
        version: The release version (as published with ``footfall release publish``).
        groups: The groups, in order.
        now_ms: The hub's clock.
        channel: The release channel.
        regions: The regions whose stores are eligible for shares (empty: every store).
        max_failure_rate: A started group's share of failed boxes that pauses the rollout.
        soak_min: Minutes after a group's last box updated before the next group starts.
        forecast_check: Count updated boxes whose footfall left its forecast as failed.
        author: Who made it.

    Raises:
        RolloutError: No group, an unknown store or region, a store twice, an empty group,
            a rate outside 0–1, or a rollout of another version still running or paused.
    """
    if not groups:
        raise RolloutError("give at least one group (--group)")
    if not 0 <= max_failure_rate < 1:
        raise RolloutError(f"max failure rate {max_failure_rate:g} is not in 0..1")
    if soak_min < 0:
        raise RolloutError(f"soak {soak_min:g} min is negative")
    live = conn.execute(
        select(rollouts.c.id, rollouts.c.version).where(
            rollouts.c.channel == channel, rollouts.c.state.in_(("running", "paused"))
        )
    ).first()
    if live is not None:
        raise RolloutError(
            f"rollout {live.id} of {live.version} on {channel} is not finished: "
            "abort it or let it finish first"
        )
    every = {row.id: row.region_id for row in conn.execute(select(stores.c.id, stores.c.region_id))}
    unknown = sorted(set(regions) - set(every.values()))
    if unknown:
        raise RolloutError(f"no region {unknown[0]!r}")
    eligible = sorted(s for s, r in every.items() if not regions or r in regions)
    made = conn.execute(
        insert(rollouts).values(
            version=version, channel=channel, state="running", reason="",
            max_failure_rate=max_failure_rate, soak_min=soak_min, forecast_check=forecast_check,
            author=author, created_ms=now_ms, updated_ms=now_ms,
        )
    )  # fmt: skip
    assert made.inserted_primary_key is not None
    rollout_id = int(made.inserted_primary_key[0])
    placed = _assign(rollout_id, groups, eligible, set(every))
    conn.execute(insert(rollout_groups), [
        {"rollout_id": rollout_id, "position": p, "name": g.name,
         "started_ms": now_ms if p == 0 else None}
        for p, g in enumerate(groups)
    ])  # fmt: skip
    conn.execute(insert(rollout_stores), [
        {"rollout_id": rollout_id, "store_id": s, "position": p, "reason": ""} for s, p in placed
    ])  # fmt: skip
    logger.info("rollout %d of %s %s: %d stores in %d groups, %s started",
                rollout_id, channel, version, len(placed), len(groups), groups[0].name)  # fmt: skip
    return rollout_id


def provider(
    conn: Connection, store_id: str, now_ms: int
) -> Iterator[tuple[str, str, dict[str, object]]]:
    """The ``software_update`` item of a store in a started group, until its box reports."""
    del now_ms
    rows = conn.execute(
        select(rollouts.c.id, rollouts.c.version, rollouts.c.channel)
        .join(rollout_stores, rollout_stores.c.rollout_id == rollouts.c.id)
        .join(rollout_groups, and_(rollout_groups.c.rollout_id == rollouts.c.id,
                                   rollout_groups.c.position == rollout_stores.c.position))
        .where(rollout_stores.c.store_id == store_id, rollout_stores.c.outcome.is_(None),
               rollouts.c.state == "running", rollout_groups.c.started_ms.is_not(None))
        .order_by(rollouts.c.id)
    )  # fmt: skip
    for row in rows:
        payload: dict[str, object] = {"version": row.version, "channel": row.channel,
                                      "rollout_id": row.id}  # fmt: skip
        yield KIND, f"rollout-{row.id}", payload


def record_report(conn: Connection, store_id: str, report: UpdateReport, now_ms: int) -> bool:
    """Keep a box's update outcome on its rollout; whether it belonged to one.

    Args:
        conn: A connection in a transaction.
        store_id: The signing store.
        report: The checked report (:func:`wire.update_report.decode_update_report`).
        now_ms: The hub's clock.

    Raises:
        RolloutError: The report names another store or a version its rollout is not of.
    """
    if report["store_id"] != store_id:
        raise RolloutError(
            f"the report is for store {report['store_id']!r}, signed by {store_id!r}"
        )
    rollout = conn.execute(
        select(rollouts.c.version).where(rollouts.c.id == report["rollout_id"])
    ).first()
    if rollout is None:
        logger.info("update report from %s outside any rollout: %s %s", store_id,
                    report["outcome"], report["version"])  # fmt: skip
        return False
    if rollout.version != report["version"]:
        raise RolloutError(f"rollout {report['rollout_id']} is of {rollout.version}, "
                           f"not {report['version']!r}")  # fmt: skip
    changed = conn.execute(
        update(rollout_stores)
        .where(rollout_stores.c.rollout_id == report["rollout_id"],
               rollout_stores.c.store_id == store_id)
        .values(outcome=report["outcome"], reason=report["reason"], running=report["running"],
                reported_ms=now_ms)
    ).rowcount  # fmt: skip
    logger.info("rollout %s: %s %s %s", report["rollout_id"], store_id, report["outcome"],
                report["reason"])  # fmt: skip
    return bool(changed)


@dataclass(frozen=True)
class Departure:
    """How a store's footfall compares with its forecast interval since an update."""

    measured: int
    outside: int
    example: str = ""

    @property
    def departed(self) -> bool:
        """Most measured hours (at least :data:`MIN_HOURS`) fell outside the interval."""
        return self.measured >= MIN_HOURS and self.outside * 2 > self.measured


def forecast_departure(conn: Connection, store_id: str, since_ms: int, now_ms: int) -> Departure:
    """The store's hours since ``since_ms`` against its seasonal interval (module docstring).

    Args:
        conn: Open connection.
        store_id: The store.
        since_ms: When its box updated; only whole hours after it count.
        now_ms: The hub's clock; only hours that have ended count.
    """
    first = max(-(-since_ms // HOUR_MS) * HOUR_MS, (now_ms // HOUR_MS - CHECK_HOURS) * HOUR_MS)
    last = now_ms // HOUR_MS * HOUR_MS  # exclusive
    if last <= first:
        return Departure(0, 0)
    start = first - HISTORY_WEEKS * WEEK_MS
    windows, foot = HOURLY["agg_windows"], HOURLY["agg_footfall"]
    analysed = {
        int(hour)
        for (hour,) in conn.execute(
            select(windows.c.hour_ms)
            .distinct()
            .where(
                windows.c.store_id == store_id, windows.c.hour_ms >= start, windows.c.hour_ms < last
            )
        )
    }
    counts: dict[int, int] = defaultdict(int)
    for hour, visitors in conn.execute(
        select(foot.c.hour_ms, func.sum(foot.c.sum_count))
        .where(foot.c.store_id == store_id, foot.c.direction == "in",
               foot.c.hour_ms >= start, foot.c.hour_ms < last)
        .group_by(foot.c.hour_ms)
    ):  # fmt: skip
        counts[int(hour)] = int(visitors or 0)
    measured = outside = 0
    example = ""
    for hour in range(first, last, HOUR_MS):
        history = [counts[h] for k in range(1, HISTORY_WEEKS + 1)
                   if (h := hour - k * WEEK_MS) in analysed]  # fmt: skip
        if hour not in analysed or len(history) < MIN_HISTORY:
            continue
        low, high = min(history), max(history)
        low_bound = max(low - 2 * math.sqrt(low) - 1, 0.0)
        high_bound = high + 2 * math.sqrt(high) + 1
        measured += 1
        if not low_bound <= counts[hour] <= high_bound:
            outside += 1
            when = datetime.fromtimestamp(hour / 1000, UTC).strftime("%Y-%m-%d %H:00 UTC")
            expected = f"expected {math.ceil(low_bound)}–{math.floor(high_bound)}"
            example = example or f"{when}: {counts[hour]} visitors, {expected}"
    return Departure(measured, outside, example)


@dataclass
class GroupView:
    """A rollout's group: its stores' outcomes."""

    position: int
    name: str
    started_ms: int | None
    stores: list[dict[str, Any]] = field(default_factory=list)

    def count(self, *outcomes: str | None) -> int:
        """Its stores with one of these outcomes (None: not reported)."""
        return sum(1 for s in self.stores if s["outcome"] in outcomes)


@dataclass
class RolloutView:
    """A rollout with its groups, as the CLI and the fleet page show it."""

    id: int
    version: str
    channel: str
    state: str
    reason: str
    max_failure_rate: float
    soak_min: float
    forecast_check: bool
    created_ms: int
    updated_ms: int
    groups: list[GroupView]


def rollout_views(conn: Connection, rollout_id: int | None = None) -> list[RolloutView]:
    """Every rollout (or one), newest first, with its groups and stores."""
    query = select(rollouts).order_by(rollouts.c.id.desc())
    if rollout_id is not None:
        query = query.where(rollouts.c.id == rollout_id)
    views = {
        r.id: RolloutView(r.id, r.version, r.channel, r.state, r.reason, r.max_failure_rate,
                          r.soak_min, bool(r.forecast_check), r.created_ms, r.updated_ms, [])
        for r in conn.execute(query)
    }  # fmt: skip
    if not views:
        return []
    groups: dict[tuple[int, int], GroupView] = {}
    for g in conn.execute(
        select(rollout_groups).where(rollout_groups.c.rollout_id.in_(views))
        .order_by(rollout_groups.c.rollout_id, rollout_groups.c.position)
    ):  # fmt: skip
        groups[g.rollout_id, g.position] = view = GroupView(g.position, g.name, g.started_ms)
        views[g.rollout_id].groups.append(view)
    for s in conn.execute(
        select(rollout_stores).where(rollout_stores.c.rollout_id.in_(views))
        .order_by(rollout_stores.c.store_id)
    ):  # fmt: skip
        groups[s.rollout_id, s.position].stores.append(
            {"store_id": s.store_id, "outcome": s.outcome, "reason": s.reason,
             "running": s.running, "reported_ms": s.reported_ms}
        )  # fmt: skip
    return list(views.values())


def _set_state(conn: Connection, rollout_id: int, state: str, reason: str, now_ms: int) -> None:
    conn.execute(update(rollouts).where(rollouts.c.id == rollout_id)
                 .values(state=state, reason=reason, updated_ms=now_ms))  # fmt: skip
    logger.warning("rollout %d %s: %s", rollout_id, state, reason)


def _heartbeat_done(conn: Connection, view: RolloutView, group: GroupView, now_ms: int) -> None:
    """Pending stores whose heartbeat already reports the version: done."""
    pending = [s["store_id"] for s in group.stores if s["outcome"] is None]
    if not pending:
        return
    running = {
        row.store_id
        for row in conn.execute(
            select(box_heartbeats.c.store_id).where(
                box_heartbeats.c.store_id.in_(pending), box_heartbeats.c.software == view.version
            )
        )
    }
    for store in group.stores:
        if store["store_id"] in running:
            store.update(outcome="current", reason="its heartbeat reports it", reported_ms=now_ms,
                         running=view.version)  # fmt: skip
            conn.execute(
                update(rollout_stores)
                .where(rollout_stores.c.rollout_id == view.id,
                       rollout_stores.c.store_id == store["store_id"])
                .values(outcome="current", reason=store["reason"], running=view.version,
                        reported_ms=now_ms)
            )  # fmt: skip


def _failures(
    conn: Connection, view: RolloutView, group: GroupView, now_ms: int, forecast: bool
) -> list[str]:
    """Why each failed box of a started group failed (``forecast``: judged by it too)."""
    why = [f"{s['store_id']} {s['outcome'].replace('_', ' ')}: {s['reason']}"
           for s in group.stores if s["outcome"] in FAILED]  # fmt: skip
    if forecast and view.forecast_check:
        for s in group.stores:
            if s["outcome"] == "installed" and s["reported_ms"] is not None:
                seen = forecast_departure(conn, s["store_id"], s["reported_ms"], now_ms)
                if seen.departed:
                    why.append(f"{s['store_id']}: footfall left its forecast interval in "
                               f"{seen.outside} of {seen.measured} hours since "
                               f"{view.version} ({seen.example})")  # fmt: skip
    return why


def advance(
    conn: Connection, now_ms: int, store_id: str | None = None, forecast: bool = True
) -> list[str]:
    """Pause, hold or move on each running rollout (or those of one store); what changed.

    Args:
        conn: A connection in a transaction.
        now_ms: The hub's clock.
        store_id: Only the rollouts this store is in (None: every running one).
        forecast: Run the forecast check of the updated boxes (two queries a box). A
            box's own heartbeat or report passes False: the fleet's thread runs it for
            every rollout each turn, and it needs hours since an update to judge anyway.
    """
    query = select(rollouts.c.id).where(rollouts.c.state == "running")
    if store_id is not None:
        query = query.where(rollouts.c.id.in_(
            select(rollout_stores.c.rollout_id).where(rollout_stores.c.store_id == store_id)
        ))  # fmt: skip
    events: list[str] = []
    for rollout_id in conn.execute(query).scalars().all():
        view = rollout_views(conn, rollout_id)[0]
        started = [g for g in view.groups if g.started_ms is not None]
        for group in started:
            _heartbeat_done(conn, view, group, now_ms)
        paused = False
        for group in started:
            why = _failures(conn, view, group, now_ms, forecast)
            if why and len(why) > view.max_failure_rate * len(group.stores):
                share = f"{len(why)} of {len(group.stores)} boxes failed"
                reason = (f"group {group.name}: {share} (more than "
                          f"{view.max_failure_rate:.0%}): " + "; ".join(why))  # fmt: skip
                _set_state(conn, view.id, "paused", reason[:4000], now_ms)
                events.append(f"rollout {view.id} paused: {reason}")
                paused = True
                break
        newest = started[-1]
        if paused or newest.count(None):
            continue
        last_ms = max((s["reported_ms"] or 0) for s in newest.stores)
        if now_ms - last_ms < view.soak_min * 60_000:
            continue
        if newest.position + 1 < len(view.groups):
            following = view.groups[newest.position + 1]
            conn.execute(
                update(rollout_groups)
                .where(rollout_groups.c.rollout_id == view.id,
                       rollout_groups.c.position == following.position)
                .values(started_ms=now_ms)
            )  # fmt: skip
            conn.execute(update(rollouts).where(rollouts.c.id == view.id)
                         .values(updated_ms=now_ms))  # fmt: skip
            events.append(f"rollout {view.id}: group {following.name} started")
            logger.info("rollout %d: group %s started", view.id, following.name)
        else:
            _set_state(conn, view.id, "done", "every group updated", now_ms)
            events.append(f"rollout {view.id} done")
    return events


def act(
    conn: Connection,
    rollout_id: int,
    action: str,
    now_ms: int,
    reason: str = "",
    forecast_check: bool | None = None,
) -> str:
    """Pause, resume or abort a rollout; its new state.

    Resuming asks the boxes that failed again (their outcome is cleared); with
    ``forecast_check=False`` it also stops judging the boxes by their forecast (an
    operator who checked that the store really was quieter).

    Raises:
        RolloutError: No such rollout, an unknown action, or one its state does not allow.
    """
    row = conn.execute(select(rollouts.c.state).where(rollouts.c.id == rollout_id)).first()
    if row is None:
        raise RolloutError(f"no rollout {rollout_id}")
    allowed = {"pause": ("running",), "resume": ("paused",), "abort": ("running", "paused")}
    if action not in allowed:
        raise RolloutError(f"unknown action {action!r} (pause, resume, abort)")
    if row.state not in allowed[action]:
        raise RolloutError(f"rollout {rollout_id} is {row.state}: it cannot {action}")
    state = {"pause": "paused", "resume": "running", "abort": "aborted"}[action]
    if action == "resume":
        conn.execute(
            update(rollout_stores)
            .where(rollout_stores.c.rollout_id == rollout_id, rollout_stores.c.outcome.in_(FAILED))
            .values(outcome=None, reason="asked again on resume", reported_ms=None)
        )  # fmt: skip
    if forecast_check is not None:
        conn.execute(update(rollouts).where(rollouts.c.id == rollout_id)
                     .values(forecast_check=forecast_check))  # fmt: skip
    _set_state(conn, rollout_id, state, reason or f"{action} by an operator", now_ms)
    return state
