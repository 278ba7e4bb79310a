"""Supervision of the box's threads: restart what crashes, within a budget.

Every camera worker and every service (scheduler, alert engine, web server, …)
runs in its own thread under :class:`Supervisor`. When its ``run`` raises, the
supervisor waits and starts it again: 1 s, 2 s, 4 s … up to a maximum, counting
the restarts in a sliding window. Beyond ``max_restarts`` in that window the
unit is reported *down* and retried only every ``down_retry_s`` until the
window has room again (like Frigate's watchdog with a restart budget).
:meth:`Supervisor.restart` rebuilds a unit on purpose (a camera whose config
changed): its run is stopped and ``make`` called again, outside the budget.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)


class Runnable(Protocol):
    """Anything that runs until a stop event is set."""

    def run(self, stop: threading.Event) -> object:
        """Work until ``stop`` is set (or the work is done); raise on failure."""


class Service(Protocol):
    """A named long-running part of the box (the scheduler, the alert engine, …).

    ``run`` must return soon after ``stop`` is set; an exception is a crash and
    the service is started again (``run`` called again on the same object).
    """

    @property
    def name(self) -> str:
        """A short unique name (log lines, ``/healthz``, metric labels)."""

    def run(self, stop: threading.Event) -> object:
        """Work until ``stop`` is set."""


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How often a crashed unit is restarted.

    Attributes:
        max_restarts: restarts allowed within ``window_s``.
        window_s: the sliding window, seconds.
        backoff_initial_s: the first pause; it doubles with each restart in the window.
        backoff_max_s: the longest pause within the budget.
        down_retry_s: the pause once the budget is spent.
    """

    max_restarts: int = 5
    window_s: float = 600.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    down_retry_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Crash:
    """What the supervisor tells its hook about one crash.

    Attributes:
        name: the unit.
        error: the exception ``run`` raised (or the factory, when building failed).
        restarts: restarts in the window, this one included.
        delay_s: the pause before the next start.
        exhausted: the budget is spent: the unit is down until ``delay_s`` passes.
    """

    name: str
    error: BaseException
    restarts: int
    delay_s: float
    exhausted: bool


class RestartBudget:
    """Restarts counted in a sliding window, and the pause before the next one.

    Args:
        policy: the budget and backoff.
        clock: monotonic seconds (a test passes its own).
    """

    def __init__(self, policy: RestartPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._times: deque[float] = deque()

    def record(self) -> tuple[float, bool, int]:
        """Count a restart now.

        Returns:
            The pause before it, whether the budget is spent, and the restarts
            in the window (this one included).
        """
        now = self._clock()
        p = self.policy
        while self._times and self._times[0] <= now - p.window_s:
            self._times.popleft()
        exhausted = len(self._times) >= p.max_restarts
        self._times.append(now)
        count = len(self._times)
        if exhausted:
            return p.down_retry_s, True, count
        return min(p.backoff_initial_s * 2 ** (count - 1), p.backoff_max_s), False, count


CrashHook = Callable[[Crash], None]
EndHook = Callable[[str], None]


class Supervisor:
    """One thread per unit; crashed units are rebuilt and restarted.

    Args:
        stop: the box's stop event (set it to stop every unit).
        policy: the restart budget; each unit has its own count.
    """

    def __init__(self, stop: threading.Event, policy: RestartPolicy) -> None:
        self.stop = stop
        self.policy = policy
        self._threads: dict[str, threading.Thread] = {}
        self._runs: dict[str, threading.Event] = {}  # unit → the stop event of its current run
        self._lock = threading.Lock()
        self._relay: threading.Thread | None = None

    def add(
        self,
        name: str,
        make: Callable[[], Runnable],
        *,
        thread_name: str | None = None,
        on_crash: CrashHook | None = None,
        on_end: EndHook | None = None,
    ) -> None:
        """Start supervising a unit in a new thread.

        Args:
            name: unique unit name (log lines).
            make: builds the runnable; called again after every crash (a crash
                while building counts as a crash).
            thread_name: the thread's name (default ``name``).
            on_crash: told about each crash, before the pause; must not raise.
            on_end: told when ``run`` returns while the box is not stopping
                (e.g. a file source ended); the unit is then not restarted.

        Raises:
            ValueError: a unit of that name already exists.
        """
        with self._lock:
            if name in self._threads:
                raise ValueError(f"a unit named {name!r} is already supervised")
            thread = threading.Thread(
                target=self._supervise,
                args=(name, make, on_crash, on_end),
                name=thread_name or name,
                daemon=True,
            )
            self._threads[name] = thread
            if self._relay is None:
                self._relay = threading.Thread(
                    target=self._relay_stop, name="supervisor-stop", daemon=True
                )
                self._relay.start()
        thread.start()

    def restart(self, name: str) -> bool:
        """Stop a unit's current run so that it is built again (its config changed).

        The unit's ``run`` sees its stop event set and returns; the supervisor then
        calls ``make`` again at once. This is not a crash: the budget is untouched.

        Returns:
            False if no unit of that name runs now.
        """
        with self._lock:
            run = self._runs.get(name)
        if run is None:
            return False
        logger.info("%s: rebuilding it", name)
        run.set()
        return True

    def _relay_stop(self) -> None:
        """Pass the box's stop on to every unit's current run."""
        self.stop.wait()
        with self._lock:
            for run in self._runs.values():
                run.set()

    def alive(self) -> list[str]:
        """Names of the units whose thread still runs."""
        with self._lock:
            return [n for n, t in self._threads.items() if t.is_alive()]

    def join(self, timeout: float) -> list[str]:
        """Wait for every thread (after setting ``stop``).

        Returns:
            The units still running after ``timeout`` seconds in all.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = dict(self._threads)
        for thread in threads.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        return [name for name, t in threads.items() if t.is_alive()]

    def _supervise(
        self,
        name: str,
        make: Callable[[], Runnable],
        on_crash: CrashHook | None,
        on_end: EndHook | None,
    ) -> None:
        budget = RestartBudget(self.policy)
        while not self.stop.is_set():
            run = threading.Event()
            with self._lock:
                self._runs[name] = run
                if self.stop.is_set():  # the relay has already passed the stop on
                    run.set()
            try:
                make().run(run)
            except Exception as exc:
                delay, exhausted, count = budget.record()
                if exhausted:
                    logger.error(
                        "%s crashed (%s: %s); restart budget spent (%d in %.0f s): "
                        "down, next try in %.0f s",
                        name,
                        type(exc).__name__,
                        exc,
                        count - 1,
                        self.policy.window_s,
                        delay,
                        exc_info=exc,
                    )
                else:
                    logger.warning(
                        "%s crashed (%s: %s); restart %d in %.1f s",
                        name,
                        type(exc).__name__,
                        exc,
                        count,
                        delay,
                        exc_info=exc,
                    )
                if on_crash is not None:
                    on_crash(Crash(name, exc, count, delay, exhausted))
                self.stop.wait(delay)
                continue
            if run.is_set() and not self.stop.is_set():
                continue  # asked to rebuild (see restart)
            if not self.stop.is_set():
                logger.info("%s ended", name)
                with self._lock:
                    del self._runs[name]
                if on_end is not None:
                    on_end(name)
            return
