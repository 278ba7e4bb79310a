"""The buzzer: one GPIO output line, on while an unacknowledged alert is active.

Backends follow :class:`GpioBackend`: ``gpiod`` (libgpiod 2 Python bindings, the
Jetson's GPIO character device, imported only when used) and :class:`SimulatedGpio`
(records every state, for tests and boxes without a buzzer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from appliance.alerts.log import AlertRecord
from appliance.config import BuzzerConfig

logger = logging.getLogger(__name__)

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class GpioBackend(Protocol):
    """One output line."""

    def set(self, on: bool) -> None:
        """Drive the line active (``on``) or inactive."""

    def close(self) -> None:
        """Release the line (inactive)."""


class SimulatedGpio:
    """A line that only records its states: ``states`` is ``[(monotonic_s, on), ...]``."""

    def __init__(self) -> None:
        self.states: list[tuple[float, bool]] = []

    @property
    def on(self) -> bool:
        """The current state (off before the first set)."""
        return bool(self.states) and self.states[-1][1]

    def set(self, on: bool) -> None:
        """Record a state."""
        self.states.append((time.monotonic(), on))

    def close(self) -> None:
        """Record the line going off."""
        self.set(False)


class GpiodBackend:
    """A line requested through libgpiod 2 (``pip install gpiod``, the ``jetson`` extra).

    Args:
        chip: the chip device, e.g. ``/dev/gpiochip0``.
        line: the line offset.
        active_low: the buzzer sounds when the line is low.

    Raises:
        RuntimeError: gpiod is missing or the line cannot be requested.
    """

    def __init__(self, chip: str, line: int, active_low: bool = False) -> None:
        try:
            import gpiod
            from gpiod.line import Direction, Value
        except ImportError as exc:
            raise RuntimeError("the gpiod buzzer needs `pip install gpiod` (libgpiod 2)") from exc
        self._line = line
        self._values = {True: Value.ACTIVE, False: Value.INACTIVE}
        settings = gpiod.LineSettings(
            direction=Direction.OUTPUT, output_value=Value.INACTIVE, active_low=active_low
        )
        try:
            self._request: Any = gpiod.request_lines(
                chip, consumer="footfall-buzzer", config={line: settings}
            )
        except OSError as exc:
            raise RuntimeError(f"GPIO {chip} line {line}: {exc}") from exc

    def set(self, on: bool) -> None:
        """Drive the line."""
        self._request.set_value(self._line, self._values[on])

    def close(self) -> None:
        """Turn off and release the line."""
        self.set(False)
        self._request.release()


def open_gpio(config: BuzzerConfig) -> GpioBackend:
    """The backend a buzzer config names."""
    if config.backend == "simulated":
        return SimulatedGpio()
    return GpiodBackend(config.chip, config.line, config.active_low)


class Buzzer:
    """Sounds while an active, unacknowledged alert is at least ``min_severity``."""

    def __init__(self, backend: GpioBackend, min_severity: str = "critical") -> None:
        self.backend = backend
        self._min_rank = SEVERITY_RANK[min_severity]
        self._on: bool | None = None

    def update(self, active: Sequence[AlertRecord]) -> bool:
        """Set the line from the active alerts; returns whether it sounds."""
        on = any(a.acked_ms is None and SEVERITY_RANK[a.severity] >= self._min_rank for a in active)
        if on != self._on:
            self.backend.set(on)
            self._on = on
            logger.info("buzzer %s", "on" if on else "off")
        return on

    def close(self) -> None:
        """Silence and release the line."""
        self.backend.close()
