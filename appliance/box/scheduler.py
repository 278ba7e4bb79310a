"""The box's scheduled jobs (APScheduler 3), run as one supervised service.

=================  ==========================  =============================================
job                when                        what
=================  ==========================  =============================================
``analytics``      every ``analytics_every_s``  analyse the 5-minute buckets closed since the
                   (and at start)              last run (``late_grace_s`` after they close),
                                               recomputing the previous one once more for
                                               late points
``optimize``       hourly                      ``PRAGMA optimize`` (rollups are computed on
                                               read: there is nothing to roll up)
``maintenance``    nightly at                  delete track points past
                   ``maintenance_at``          ``storage.track_retention_hours``, vacuum
                                               (incremental), ``PRAGMA optimize``
``sync``           every ``sync_every_s``      the sync callable, when one is wired in
``weekly_report``  ``weekly_report_day`` at    the report callable, when one is wired in
                   ``weekly_report_at``
=================  ==========================  =============================================

Every job has ``coalesce=True`` (missed runs collapse into one),
``max_instances=1`` and a ``misfire_grace_time``. The analytics job keeps no
state of its own: its high-water mark is the newest bucket in ``agg_windows``,
so a restart, a suspended box or a clock jump neither skips nor repeats a
window.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from appliance.analytics.engine import BUCKET_MS, LOOKBACK_MS, analyze_range
from appliance.box.health import Health
from appliance.config import BoxConfig
from appliance.config.live import ConfigSource, current
from local_db import connect, delete_track_points_before
from local_db.aggregates import newest_bucket
from local_db.maintenance import optimize, vacuum
from local_db.observations import count_points_between, first_point_since

logger = logging.getLogger(__name__)

#: Buckets per ``analyze_range`` call when catching up (one transaction each).
CHUNK_BUCKETS = 12
#: A high-water mark further in the future than this was written under a wrong
#: clock (e.g. before NTP set it); analysis resumes from the last bucket before now.
CLOCK_TOLERANCE_MS = 60 * 60 * 1000

JobCallable = Callable[[], object]


@dataclass(frozen=True, slots=True)
class Maintenance:
    """What one nightly maintenance did.

    Attributes:
        deleted_points: track points past retention.
        vacuum: ``full`` the first time (switching the file to incremental
            auto-vacuum), then ``incremental``.
        pages_before: database pages before the vacuum.
        pages_after: database pages after it.
    """

    deleted_points: int
    vacuum: Literal["full", "incremental"]
    pages_before: int
    pages_after: int


def _utc(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _down(t_ms: int) -> int:
    return t_ms - t_ms % BUCKET_MS


def _up(t_ms: int) -> int:
    return t_ms + (-t_ms) % BUCKET_MS


class BoxScheduler:
    """The scheduled jobs of one box; a :class:`appliance.box.supervisor.Service`.

    The job methods take an explicit ``now_ms`` so that tests (and a catch-up
    by hand) drive them without waiting for the clock.

    Args:
        config: the store config (``runtime`` timings, retention, time zone), or the
            process's live one: each job run uses its newest good version (the
            timings and the time zone are read once, at start).
        db_path: the SQLite file; each job run opens its own connection.
        health: told about every job run and the analysed high-water mark.
        sync: pushes aggregates to the hub, run every ``runtime.sync_every_s``.
        weekly_report: builds the weekly report, run weekly.
        clock: UTC seconds.
    """

    name = "scheduler"

    def __init__(
        self,
        config: ConfigSource,
        db_path: Path,
        *,
        health: Health | None = None,
        sync: JobCallable | None = None,
        weekly_report: JobCallable | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = config
        self.db_path = db_path
        self.health = health
        self.sync = sync
        self.weekly_report = weekly_report
        self._clock = clock
        self._stopping = threading.Event()
        self.scheduler: BackgroundScheduler | None = None

    @property
    def config(self) -> BoxConfig:
        """The config in use now (the live config's newest good version)."""
        return current(self.source)

    def _now_ms(self, now_ms: int | None) -> int:
        return round(self._clock() * 1000) if now_ms is None else now_ms

    # --- jobs ---------------------------------------------------------------------------

    def analytics_job(self, now_ms: int | None = None) -> list[tuple[int, int]]:
        """Analyse every bucket closed since the last run (and the last one again, once).

        A bucket ``[b, b + 5 min)`` is closed once ``now ≥ b + 5 min + late_grace_s``.
        Buckets are analysed from the newest one in ``agg_windows`` (recomputed once
        more, for late points) up to the last closed one, in chunks of an hour. With
        no analysed bucket yet, analysis starts at the first stored point. Buckets
        whose points may already have expired (retention) are never analysed.

        Args:
            now_ms: UTC ms to take as now (default: the clock).

        Returns:
            The ``[t0, t1)`` ranges analysed, oldest first (empty: nothing closed).
        """
        config = self.config  # one version for the whole run (zones saved meanwhile: next run)
        now = self._now_ms(now_ms)
        closed_end = _down(now - config.runtime.late_grace_s * 1000)
        retention_ms = round(config.storage.track_retention_hours * 3_600_000)
        floor = _up(now - retention_ms + LOOKBACK_MS)
        done: list[tuple[int, int]] = []
        with closing(connect(self.db_path)) as conn:
            last = self._last_bucket(conn, closed_end)
            if last is not None:
                start = last  # the newest bucket is recomputed once more, for late points
                if self.health is not None:
                    self.health.analysed_until(last + BUCKET_MS)
                if last + BUCKET_MS >= closed_end:
                    return done
            else:
                first = first_point_since(conn, floor)
                if first is None:
                    return done
                start = _down(first)
            if start < floor:
                logger.warning(
                    "analytics: buckets from %s to %s are past retention: not analysed",
                    _utc(start),
                    _utc(floor),
                )
                start = floor
            for t0 in range(start, closed_end, CHUNK_BUCKETS * BUCKET_MS):
                if self._stopping.is_set():
                    break
                t1 = min(t0 + CHUNK_BUCKETS * BUCKET_MS, closed_end)
                analyze_range(conn, config, t0, t1)
                done.append((t0, t1))
                if self.health is not None:
                    self.health.analysed_until(t1)
        return done

    def _last_bucket(self, conn: sqlite3.Connection, closed_end: int) -> int | None:
        """The newest analysed bucket of this store: the analytics high-water mark."""
        store = self.config.store.id
        last = newest_bucket(conn, store)
        if last is not None and last + BUCKET_MS > closed_end + CLOCK_TOLERANCE_MS:
            before = newest_bucket(conn, store, before_ms=closed_end)
            logger.warning(
                "analytics: newest bucket %s is %d min ahead of the clock (written under a "
                "wrong clock?); resuming after %s",
                _utc(last),
                (last + BUCKET_MS - closed_end) // 60_000,
                "nothing" if before is None else _utc(before),
            )
            last = before
        return last

    def optimize_job(self) -> None:
        """``PRAGMA optimize``: refresh the query planner's statistics where they are stale."""
        with closing(connect(self.db_path)) as conn:
            optimize(conn)

    def maintenance_job(self, now_ms: int | None = None) -> Maintenance:
        """Retention, then vacuum and ``PRAGMA optimize``.

        Points older than ``storage.track_retention_hours`` are deleted even when
        they were never analysed (privacy first; it is logged). The first run
        switches the file to incremental auto-vacuum with one full ``VACUUM``;
        later runs release the free pages with ``PRAGMA incremental_vacuum``.

        Args:
            now_ms: UTC ms to take as now (default: the clock).
        """
        now = self._now_ms(now_ms)
        cutoff = now - round(self.config.storage.track_retention_hours * 3_600_000)
        with closing(connect(self.db_path)) as conn:
            last = newest_bucket(conn, self.config.store.id)
            analysed_until = 0 if last is None else last + BUCKET_MS
            unanalysed = count_points_between(conn, analysed_until, cutoff)
            if unanalysed:
                logger.warning("retention: %d expired points were never analysed", unanalysed)
            deleted = delete_track_points_before(conn, cutoff)
            vacuumed = vacuum(conn)
            optimize(conn)
        logger.info(
            "maintenance: %d points deleted, %s vacuum %d → %d pages",
            deleted,
            vacuumed.kind,
            vacuumed.pages_before,
            vacuumed.pages_after,
        )
        return Maintenance(deleted, vacuumed.kind, vacuumed.pages_before, vacuumed.pages_after)

    # --- the service --------------------------------------------------------------------

    def build(self) -> BackgroundScheduler:
        """An APScheduler with the box's jobs, not started."""
        rt = self.config.runtime
        tz = ZoneInfo(self.config.store.timezone)
        scheduler = BackgroundScheduler(
            timezone=tz,
            executors={"default": ThreadPoolExecutor(max_workers=2)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )

        def add(job_id: str, func: JobCallable, trigger: Any, grace_s: int, **kw: Any) -> None:
            scheduler.add_job(
                func, trigger, id=job_id, name=job_id, misfire_grace_time=grace_s, **kw
            )

        add(
            "analytics",
            self.analytics_job,
            IntervalTrigger(seconds=rt.analytics_every_s, timezone=tz),
            rt.analytics_every_s,
            next_run_time=datetime.now(tz),  # catch up at once after a restart
        )
        add("optimize", self.optimize_job, IntervalTrigger(hours=1, timezone=tz), 600)
        hour, minute = (int(x) for x in rt.maintenance_at.split(":"))
        add(
            "maintenance",
            self.maintenance_job,
            CronTrigger(hour=hour, minute=minute, timezone=tz),
            3600,
        )
        if self.sync is not None:
            add(
                "sync",
                self.sync,
                IntervalTrigger(seconds=rt.sync_every_s, timezone=tz),
                rt.sync_every_s,
            )
        if self.weekly_report is not None:
            hour, minute = (int(x) for x in rt.weekly_report_at.split(":"))
            trigger = CronTrigger(
                day_of_week=rt.weekly_report_day, hour=hour, minute=minute, timezone=tz
            )
            add("weekly_report", self.weekly_report, trigger, 6 * 3600)
        scheduler.add_listener(
            self._job_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
        )
        return scheduler

    def _job_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            logger.warning("job %s missed its run at %s", event.job_id, event.scheduled_run_time)
            return
        if self.health is not None:
            ok = event.code == EVENT_JOB_EXECUTED
            error = "" if ok else f"{type(event.exception).__name__}: {event.exception}"
            self.health.job_finished(event.job_id, ok, error)

    def run(self, stop: threading.Event) -> None:
        """Run the jobs until ``stop`` is set, then wait for the running ones."""
        self._stopping.clear()
        scheduler = self.build()
        scheduler.start()
        self.scheduler = scheduler
        logger.info("scheduler: %s", ", ".join(job.id for job in scheduler.get_jobs()))
        try:
            stop.wait()
        finally:
            self._stopping.set()
            scheduler.shutdown(wait=True)
            self.scheduler = None
