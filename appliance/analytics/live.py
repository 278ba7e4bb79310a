"""Live state of the store: who is where in the last seconds (alert engine, Live page).

:func:`snapshot` is the one seam. It fuses the points of the last ``window_s`` seconds
into people (:mod:`appliance.analytics.fusion`: nobody counts twice where cameras
overlap), labels staff, counts customers per zone, and predicts each queue's wait.

Labelling staff and predicting waits need more than a few seconds, so a
:class:`LiveCache` keeps, between calls, what a bounded lookback (10 minutes) has
taught: per camera track whether it started in, or mostly stays in, a ``staff_only``
zone (the engine's rule, carried across ID switches and cameras by the fusion's links),
and the points near queues and service points (sampled every 0.5 s). A call with a
cache reads only the rows written since the last call (by ``rowid``); a call without
one reads the whole lookback once. Points later than ``now_ms`` wait in the cache
until their time comes, so a replay of stored data sees only its past.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

import numpy as np
import pandas as pd

from appliance.analytics.engine import STAFF_SHARE, service_point_of
from appliance.analytics.fusion import (
    FusionSettings,
    fuse,
    jitter,
    link_people,
    resample_people,
    smoothing_steps,
)
from appliance.analytics.geometry import inside
from appliance.analytics.metrics import MetricSettings, predicted_waits, queue_events
from appliance.config import BoxConfig, ZoneConfig
from local_db.observations import (
    latest_camera_events,
    newest_rowid,
    points_since,
    points_written_after,
)

logger = logging.getLogger(__name__)

LOOKBACK_S = 600.0
CONTEXT_S = 10.0  # raw points kept for the fusion window
QUEUE_REFRESH_MS = 10_000  # how often queue events (service times) are recomputed
QUEUE_SAMPLE_MS = 500  # queue-area points kept per track and half second
_KEY = ["camera_id", "track_id"]
_COLUMNS = ["rowid", "camera_id", "track_id", "t_ms", "x_m", "y_m"]


@dataclass(frozen=True)
class LivePerson:
    """One person now (anonymous: no ids leave this module)."""

    x_m: float
    y_m: float
    staff: bool


@dataclass(frozen=True)
class LiveSnapshot:
    """The store at ``t_ms``.

    Attributes:
        t_ms: the moment (UTC ms).
        people: everyone seen in the window, at their latest position.
        zone_counts: customers per zone id (every zone of the config).
        staff_counts: staff per zone id.
        store_occupancy: customers inside the floor plan.
        queue_lengths: customers per ``queue`` zone.
        predicted_wait_s: per queue zone, the wait of someone joining now (people in
            the queue x the mean service time of the last 10 served); None until
            someone has been served within the lookback.
        cameras_up: per camera, its latest ``camera_events`` state (up without events).
    """

    t_ms: int
    people: list[LivePerson]
    zone_counts: dict[str, int]
    staff_counts: dict[str, int]
    store_occupancy: int
    queue_lengths: dict[str, int]
    predicted_wait_s: dict[str, float | None]
    cameras_up: dict[str, bool]


@dataclass(slots=True)
class _Track:
    """What the lookback says about one camera track."""

    first_staff: bool  # its first point was in a staff_only zone
    n: int
    n_staff: int  # points in staff_only zones
    last_ms: int
    linked: bool = False  # fusion joined it to a staff person

    @property
    def staff(self) -> bool:
        return self.first_staff or self.linked or self.n_staff >= STAFF_SHARE * self.n


def _empty_points() -> pd.DataFrame:
    dtypes = {"rowid": np.int64, "camera_id": object, "track_id": np.int64, "t_ms": np.int64}
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, float)) for c in _COLUMNS})


class LiveCache:
    """What :func:`snapshot` keeps between calls; keep one per process and config.

    Args:
        config: the store config it was built for (a different config resets it).
        lookback_s: how far back staff labels and service times reach.
    """

    def __init__(self, config: BoxConfig, lookback_s: float = LOOKBACK_S) -> None:
        self.lookback_ms = round(lookback_s * 1000)
        self.configure(config)

    def configure(self, config: BoxConfig) -> None:
        """Use another config (zones may have changed): forget everything learnt."""
        self.config = config
        self._staff_zones = [z for z in config.zones if z.kind == "staff_only"]
        self._queues: list[tuple[ZoneConfig, ZoneConfig]] = []
        for q in (z for z in config.zones if z.kind == "queue"):
            sp = service_point_of(q, config)
            if sp is not None:
                self._queues.append((q, sp))
        boxes = [np.asarray(z.polygon, float) for pair in self._queues for z in pair]
        self._queue_boxes = [(b.min(axis=0), b.max(axis=0)) for b in boxes]
        self.reset()

    def reset(self) -> None:
        """Forget everything (the next call reads the lookback again)."""
        self._now: int | None = None
        self._high_water = 0
        self._pending = _empty_points()
        self._recent = _empty_points()
        self._queue_points = _empty_points()
        self._tracks: dict[tuple[str, int], _Track] = {}
        self._queue_events: dict[str, pd.DataFrame] = {}
        self._queue_refreshed = -(2**62)

    def update(self, conn: sqlite3.Connection, now_ms: int) -> None:
        """Take in the rows written since the last call (or the lookback, the first time)."""
        if self._now is not None and now_ms < self._now:
            self.reset()
        top = newest_rowid(conn)
        if top < self._high_water:  # the table was emptied; rowids start again
            self.reset()
        if self._now is None:
            rows = points_since(conn, now_ms - self.lookback_ms, top)
        else:
            rows = points_written_after(conn, self._high_water, top)
        self._high_water = top
        rows = rows.astype(_empty_points().dtypes.to_dict())
        rows = pd.concat([self._pending, rows], ignore_index=True) if len(self._pending) else rows
        due = rows["t_ms"].to_numpy() <= now_ms
        self._pending = rows[~due]
        rows = rows[due & (rows["t_ms"].to_numpy() >= now_ms - self.lookback_ms)]
        cold = self._now is None
        self._now = now_ms
        rows = rows.sort_values("t_ms", kind="stable")
        self._take(rows, now_ms)
        if cold and len(rows):
            # staff labels reach tracks that continue a staff track (ID switch, camera
            # hand-over) within the lookback; later calls link within their window
            sampled = rows.assign(slot=rows["t_ms"] // QUEUE_SAMPLE_MS)
            sampled = sampled.drop_duplicates([*_KEY, "slot"])
            self.spread_staff(sampled)

    def _take(self, rows: pd.DataFrame, now_ms: int) -> None:
        x, y = rows["x_m"].to_numpy(float), rows["y_m"].to_numpy(float)
        in_staff = np.zeros(len(rows), bool)
        for zone in self._staff_zones:
            in_staff |= inside(zone.polygon, x, y)
        new = (
            rows[_KEY]
            .assign(in_staff=in_staff, t_ms=rows["t_ms"].to_numpy())
            .groupby(_KEY, sort=False)
            .agg(
                first=("in_staff", "first"),
                n=("in_staff", "size"),
                n_staff=("in_staff", "sum"),
                last_ms=("t_ms", "max"),
            )
        )
        tracks = self._tracks
        for key, first, n, n_staff, last_ms in new.itertuples(name=None):  # one per track
            track = tracks.get(key)
            if track is None:
                tracks[key] = _Track(bool(first), int(n), int(n_staff), int(last_ms))
            else:
                track.n += int(n)
                track.n_staff += int(n_staff)
                track.last_ms = max(track.last_ms, int(last_ms))
        if len(tracks) > len(new):  # forget tracks not seen within the lookback
            old = now_ms - self.lookback_ms
            self._tracks = {k: t for k, t in tracks.items() if t.last_ms >= old}

        context = now_ms - round(CONTEXT_S * 1000)
        recent = pd.concat([self._recent, rows[rows["t_ms"] >= context]], ignore_index=True)
        self._recent = recent[recent["t_ms"] >= context]

        near = np.zeros(len(rows), bool)
        for lo, hi in self._queue_boxes:
            near |= (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1])
        sampled = rows[near].assign(slot=rows["t_ms"][near] // QUEUE_SAMPLE_MS)
        sampled = sampled.drop_duplicates([*_KEY, "slot"]).drop(columns="slot")
        queue = pd.concat([self._queue_points, sampled], ignore_index=True)
        self._queue_points = queue[queue["t_ms"] >= now_ms - self.lookback_ms]

    def staff_tracks(self, keys: pd.DataFrame) -> np.ndarray:
        """Whether each ``camera_id, track_id`` row belongs to a staff track."""
        codes, uniques = pd.factorize(pd.MultiIndex.from_frame(keys[_KEY]))
        tracks = self._tracks
        staff = np.fromiter(
            (tracks[k].staff if k in tracks else False for k in uniques), bool, len(uniques)
        )
        return np.asarray(staff[codes], dtype=bool)

    def spread_staff(self, pts: pd.DataFrame) -> tuple[np.ndarray, pd.Series]:
        """Link ``pts`` into people; every track of a person with a staff track is staff.

        Returns:
            The person of each row and whether each person is staff.
        """
        person = link_people(pts)
        person_staff = pd.Series(self.staff_tracks(pts)).groupby(person).any()
        keys = pts[_KEY][person_staff.to_numpy()[person]].drop_duplicates()
        for key in keys.itertuples(index=False, name=None):
            if key in self._tracks:
                self._tracks[key].linked = True
        return person, person_staff

    def window(self, now_ms: int, window_ms: int) -> pd.DataFrame:
        """The raw points of (now - window, now]."""
        t = self._recent["t_ms"].to_numpy()
        return self._recent[(t > now_ms - window_ms) & (t <= now_ms)]

    def queue_events(self, now_ms: int) -> dict[str, pd.DataFrame]:
        """Queue events of the lookback per queue zone (customers only), refreshed every 10 s."""
        if now_ms - self._queue_refreshed < QUEUE_REFRESH_MS:
            return self._queue_events
        self._queue_refreshed = now_ms
        pts = self._queue_points
        customers = fuse(pts[~self.staff_tracks(pts)]) if len(pts) else fuse(pts)
        settings = MetricSettings()
        self._queue_events = {
            q.id: queue_events(customers, q.polygon, sp.polygon, settings) for q, sp in self._queues
        }
        return self._queue_events


def _cameras_up(conn: sqlite3.Connection, config: BoxConfig, now_ms: int) -> dict[str, bool]:
    latest = latest_camera_events(conn, [cam.id for cam in config.cameras], now_ms)
    return {cam: event is None or event[2] == "up" for cam, event in latest.items()}


def _predicted_wait(events: pd.DataFrame, length: int, now_ms: int) -> float | None:
    """The engine's prediction for someone joining at ``now_ms`` behind ``length`` people."""
    probe = pd.DataFrame({"join_ms": [now_ms + 1]})
    joined = pd.concat([events, probe], ignore_index=True)
    predicted = predicted_waits(joined, pd.Series([length], index=[now_ms])).iloc[-1]
    return None if np.isnan(predicted) else float(predicted)


def snapshot(
    conn: sqlite3.Connection,
    config: BoxConfig,
    now_ms: int,
    window_s: float = 3.0,
    cache: LiveCache | None = None,
) -> LiveSnapshot:
    """The store at ``now_ms``: everyone seen in the last ``window_s`` seconds.

    Args:
        conn: a connection to the box's database.
        config: the store config.
        now_ms: the moment (UTC ms); points after it are not used yet.
        window_s: a person counts if seen within this many seconds (at most 10).
        cache: what earlier calls learnt (see :class:`LiveCache`); without one the
            whole lookback is read.

    Returns:
        The snapshot.
    """
    if cache is None:
        cache = LiveCache(config)
    elif cache.config is not config and cache.config != config:
        cache.configure(config)
    cache.update(conn, now_ms)
    window_ms = round(min(window_s, CONTEXT_S) * 1000)
    pts = cache.window(now_ms, window_ms)
    zones = config.zones
    if pts.empty:
        x = y = np.zeros(0)
        staff = np.zeros(0, bool)
    else:
        person, person_staff = cache.spread_staff(pts)
        people = pts[["t_ms", "x_m", "y_m"]].assign(person=person)
        # the fusion's centred smoothing at a person's latest step: the mean of the last
        # half window (as many steps as the measured jitter needs)
        steps = resample_people(people, FusionSettings(max_smooth_steps=1))
        half = smoothing_steps(jitter(steps), FusionSettings()) // 2 + 1
        last = steps.groupby("person").tail(half).groupby("person", as_index=False).mean()
        x, y = last["x_m"].to_numpy(float), last["y_m"].to_numpy(float)
        staff = person_staff.reindex(last["person"].to_numpy()).to_numpy(bool)
    zone_counts, staff_counts = {}, {}
    for zone in zones:
        isin = inside(zone.polygon, x, y)
        zone_counts[zone.id] = int((isin & ~staff).sum())
        staff_counts[zone.id] = int((isin & staff).sum())
    plan = config.floor_plan
    on_plan = (x >= 0) & (x <= plan.width_m) & (y >= 0) & (y <= plan.depth_m)
    queue_lengths = {z.id: zone_counts[z.id] for z in zones if z.kind == "queue"}
    events = cache.queue_events(now_ms)
    waits = {
        q: (_predicted_wait(events[q], n, now_ms) if q in events else None)
        for q, n in queue_lengths.items()
    }
    return LiveSnapshot(
        t_ms=now_ms,
        people=[
            LivePerson(float(a), float(b), bool(s))
            for a, b, s in zip(x.tolist(), y.tolist(), staff.tolist(), strict=True)
        ],
        zone_counts=zone_counts,
        staff_counts=staff_counts,
        store_occupancy=int((on_plan & ~staff).sum()),
        queue_lengths=queue_lengths,
        predicted_wait_s=waits,
        cameras_up=_cameras_up(conn, config, now_ms),
    )
