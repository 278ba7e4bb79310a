"""A live store without cameras: a simulated run fed into the database as time passes.

:class:`SimReplay` takes the camera observations of a simulated store
(:func:`lab.sim.simulate_file`) and writes them through the box's one writer
(:class:`local_db.DbWriter`) as if the cameras were seeing them now: the simulated
second ``start_s`` maps to the moment the replay is made, and a point ``t`` seconds
later is written ``t / speed`` wall seconds later, stamped with that wall time.
Observations before ``start_s`` are written at once as the recent past, so the
dashboard has history from the first second. Camera ``up`` events (and the
scenario's outages as ``down``/``up``) go in the same way.

It feeds the dashboard's browser test and the demo (``footfall replay``). Its
progress counts what the writer has *committed*, not what was handed to it: a
database that stops taking writes (a full disk) ends :meth:`SimReplay.run` with
a :class:`ReplayError` that says how much was kept.

Example:
    >>> result = simulate_scenario("examples/sim/corner_shop/scenario.yaml", minutes=10)
    >>> with DbWriter("demo.db") as writer:  # doctest: +SKIP
    ...     replay = SimReplay(result, writer, speed=2.0, start_s=120)
    ...     replay.run(threading.Event())
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from lab.sim import SimResult, load_scenario, load_store_geometry, simulate
from local_db import DbWriter

logger = logging.getLogger(__name__)

DEFAULT_TICK_S = 0.2
DEFAULT_WRITE_TIMEOUT_S = 30.0
_CONF = 1.0  # simulated tracks carry no detector confidence


@dataclass(frozen=True, slots=True)
class ReplayProgress:
    """How far a replay is.

    Attributes:
        points: observations committed to the database so far.
        events: camera events committed so far.
        total_points: observations in the run.
        done: every observation and event has been handed to the writer.
    """

    points: int
    events: int
    total_points: int
    done: bool


class ReplayError(RuntimeError):
    """The database stopped taking the replay's writes; the message says what was kept."""


def simulate_scenario(
    path: str | Path, seed: int | None = None, minutes: float | None = None
) -> SimResult:
    """Simulate a scenario file, optionally with fewer minutes of arrivals.

    Args:
        path: the scenario YAML (``examples/sim/*/scenario.yaml``).
        seed: random seed (default: the scenario's).
        minutes: minutes of arrivals (default: the scenario's ``arrivals.duration_s``);
            the store then drains as usual.

    Raises:
        lab.sim.ScenarioError: the scenario or its store config is invalid.
        lab.sim.LayoutError: the scenario does not fit the store.
    """
    scenario = load_scenario(path)
    if minutes is not None:
        arrivals = scenario.arrivals.model_copy(update={"duration_s": minutes * 60})
        scenario = scenario.model_copy(update={"arrivals": arrivals})
    return simulate(scenario, load_store_geometry(scenario, path), seed)


class SimReplay:
    """Writes a simulated run's observations into a database in scaled real time.

    Args:
        result: the simulated run.
        writer: the started database writer.
        speed: simulated seconds per wall second (2.0: twice as fast as life).
        start_s: the simulated second that maps to now; earlier observations are
            written by the first :meth:`step`, stamped in the past.
        now_s: the wall time (epoch seconds) that ``start_s`` maps to (default: now).

    Raises:
        ValueError: ``speed`` is not positive or ``start_s`` is negative.
    """

    def __init__(
        self,
        result: SimResult,
        writer: DbWriter,
        *,
        speed: float = 1.0,
        start_s: float = 0.0,
        now_s: float | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        if start_s < 0:
            raise ValueError(f"start_s must not be negative, got {start_s}")
        self._writer = writer
        self.speed = speed
        self._origin_ms = result.start_ms + round(start_s * 1000)
        self._wall0_ms = round((time.time() if now_s is None else now_s) * 1000)
        obs = result.observations
        self._cameras: npt.NDArray[np.object_] = obs["camera_id"].to_numpy(object)
        self._tracks: npt.NDArray[np.int64] = obs["track_id"].to_numpy(np.int64)
        self._t_ms = self.wall_ms(obs["t_ms"].to_numpy(np.int64))
        self._x: npt.NDArray[np.float64] = obs["x_m"].to_numpy(np.float64)
        self._y: npt.NDArray[np.float64] = obs["y_m"].to_numpy(np.float64)
        self._events = self._camera_events(result)
        self._next_point = 0
        self._next_event = 0
        # (writer ticket, observations or events handed over up to it), in ticket order
        self._point_tickets: list[tuple[int, int]] = []
        self._event_tickets: list[tuple[int, int]] = []

    def wall_ms(self, sim_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The wall times (UTC ms) at which simulated times are written and stamped."""
        shifted = (sim_ms - self._origin_ms) / self.speed
        return np.rint(shifted).astype(np.int64) + self._wall0_ms

    def _camera_events(self, result: SimResult) -> list[tuple[int, str, Literal["up", "down"]]]:
        first = int(self.wall_ms(np.array([result.start_ms], np.int64))[0])
        events: list[tuple[int, str, Literal["up", "down"]]] = [
            (first, camera, "up") for camera in result.camera_uptime
        ]
        for camera, a, b in result.camera_outages[["camera_id", "from_ms", "to_ms"]].itertuples(
            index=False, name=None
        ):
            down, up = self.wall_ms(np.array([a, b], np.int64))
            events += [(int(down), str(camera), "down"), (int(up), str(camera), "up")]
        return sorted(events, key=lambda e: e[0])

    def progress(self) -> ReplayProgress:
        """Points and events committed so far (by the writer's committed tickets)."""
        total = len(self._t_ms)
        done = self._next_point >= total and self._next_event >= len(self._events)
        committed = self._writer.committed_batches
        return ReplayProgress(
            _committed(self._point_tickets, committed),
            _committed(self._event_tickets, committed),
            total,
            done,
        )

    def step(self, now_s: float | None = None) -> int:
        """Write every observation and camera event due by ``now_s`` (default: now).

        Returns:
            Observations submitted by this call.
        """
        now_ms = round((time.time() if now_s is None else now_s) * 1000)
        while self._next_event < len(self._events) and self._events[self._next_event][0] <= now_ms:
            t_ms, camera, state = self._events[self._next_event]
            ticket = self._writer.submit_camera_state(camera, t_ms, state, "simulated")
            self._next_event += 1
            self._event_tickets.append((ticket, self._next_event))
        end = int(np.searchsorted(self._t_ms, now_ms, side="right"))
        start, self._next_point = self._next_point, max(end, self._next_point)
        if end <= start:
            return 0
        rows = list(
            zip(
                self._cameras[start:end].tolist(),
                self._tracks[start:end].tolist(),
                self._t_ms[start:end].tolist(),
                self._x[start:end].tolist(),
                self._y[start:end].tolist(),
                [_CONF] * (end - start),
                strict=True,
            )
        )
        self._point_tickets.append((self._writer.submit_points(rows), end))
        return end - start

    def run(
        self,
        stop: threading.Event,
        tick_s: float = DEFAULT_TICK_S,
        write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
    ) -> ReplayProgress:
        """Write observations as they fall due until the run is over or ``stop`` is set.

        Args:
            stop: set it to end the replay early.
            tick_s: wall seconds between two writes.
            write_timeout_s: how long the writer may keep failing (and, at the end,
                take to commit what is queued) before the replay gives up.

        Returns:
            How far the replay got, everything handed over committed.

        Raises:
            ReplayError: the database kept refusing writes (disk full, locked, I/O
                error) for ``write_timeout_s``; what was committed is in the message.
        """
        logger.info(
            "replaying %d observations at %.3gx from sim t=%d ms",
            len(self._t_ms),
            self.speed,
            self._origin_ms,
        )
        while True:
            self._check_writer(write_timeout_s)
            self.step()
            if self.progress().done or stop.wait(tick_s):
                break
        try:
            self._writer.flush(write_timeout_s)
        except TimeoutError:
            raise self._failed(f"still uncommitted after {write_timeout_s:.0f} s") from None
        progress = self.progress()
        logger.info(
            "replay %s: %d of %d observations, %d camera events",
            "done" if progress.done else "stopped",
            progress.points,
            progress.total_points,
            progress.events,
        )
        return progress

    def _check_writer(self, timeout_s: float) -> None:
        """Give up when the writer has been failing for longer than ``timeout_s``."""
        since = self._writer.failing_since
        if since is not None and time.monotonic() - since > timeout_s:
            raise self._failed(f"failing for {time.monotonic() - since:.0f} s")

    def _failed(self, how: str) -> ReplayError:
        progress = self.progress()
        error = self._writer.last_error
        why = "" if error is None else f" ({type(error).__name__}: {error})"
        return ReplayError(
            f"database writes to {self._writer.path} {how}{why}: "
            f"{progress.points} of {progress.total_points} observations and "
            f"{progress.events} of {len(self._events)} camera events committed"
        )


def _committed(tickets: list[tuple[int, int]], committed_ticket: int) -> int:
    """How many items the submissions up to ``committed_ticket`` carried."""
    i = bisect.bisect_right(tickets, committed_ticket, key=lambda t: t[0])
    return tickets[i - 1][1] if i else 0


@dataclass
class ReplayThread:
    """A replay running in a daemon thread (for tests and the demo)."""

    replay: SimReplay
    thread: threading.Thread
    stop_event: threading.Event

    def stop(self, timeout: float = 10.0) -> ReplayProgress:
        """Stop the replay and wait for its thread."""
        self.stop_event.set()
        self.thread.join(timeout)
        return self.replay.progress()


def start_replay(replay: SimReplay, tick_s: float = DEFAULT_TICK_S) -> ReplayThread:
    """Run ``replay`` in a daemon thread until it is over or stopped."""
    stop = threading.Event()
    thread = threading.Thread(
        target=replay.run, args=(stop, tick_s), name="sim-replay", daemon=True
    )
    thread.start()
    return ReplayThread(replay, thread, stop)
