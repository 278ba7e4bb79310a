"""The health gate: the new version's ``/healthz`` says ``ok`` and its cameras' frames flow.

Passed when two answers in a row are ``200`` with ``status: ok`` (and the version on
trial, where ``/healthz`` names one) and the cameras' frame counters grew between them;
failed with the last reason seen when ``timeout_s`` passes first (the process that never
answers, answers ``degraded``, or died during the gate all end there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import requests

logger = logging.getLogger(__name__)


def _frames(report: dict[str, object]) -> int | None:
    cameras = report.get("cameras")
    if not isinstance(cameras, dict) or not cameras:
        return None
    return sum(int(c.get("frames", 0)) for c in cameras.values() if isinstance(c, dict))


def _probe(url: str, version: str) -> tuple[int | None, str]:
    """The frame count of a healthy answer, else None and why."""
    try:
        response = requests.get(url, timeout=3)
        report = response.json()
    except (requests.RequestException, ValueError) as exc:
        return None, f"no answer from {url}: {type(exc).__name__}"
    if not isinstance(report, dict):
        return None, f"{url}: not a health report"
    if response.status_code != 200 or report.get("status") != "ok":
        reasons = report.get("reasons") or []
        detail = "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else str(reasons)
        return None, f"{url}: HTTP {response.status_code}, {report.get('status')}: {detail}"
    running = report.get("version")
    if running is not None and running != version:
        return None, f"{url}: version {running} answers, not {version}"
    frames = _frames(report)
    if frames is None:
        return None, f"{url}: no camera reports frames"
    return frames, ""


def health_gate(
    url: str,
    version: str,
    timeout_s: float,
    poll_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> str | None:
    """Wait for the version on trial to be healthy with frames flowing.

    Args:
        url: The box's ``/healthz``.
        version: The version on trial.
        timeout_s: How long it has (the "N minutes").
        poll_s: Between probes.
        clock: Monotonic seconds.

    Returns:
        None if it passed, else the reason it failed.
    """
    deadline = clock() + timeout_s
    reason, last_frames = "never probed", None
    while clock() < deadline:
        frames, why = _probe(url, version)
        if frames is None:
            reason, last_frames = why, None
        elif last_frames is not None and frames > last_frames:
            logger.info("health gate passed for %s: ok, %d frames", version, frames)
            return None
        else:
            reason = f"frames not flowing ({frames} frames)"
            last_frames = frames
        time.sleep(poll_s)
    logger.warning("health gate failed for %s after %.0f s: %s", version, timeout_s, reason)
    return f"health gate failed after {timeout_s:g} s: {reason}"
