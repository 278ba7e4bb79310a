"""The dashboard's context: the store config and the camera frames every view may need.

:func:`webui.app.create_app` puts one :class:`DashboardContext` on the app; the pages
read it through :func:`context`, so that they import this module and not the app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from appliance.config import BoxConfig
from appliance.config.live import LiveConfig

#: camera id → the newest frame in the box's RAM ring buffer as JPEG bytes (None: no frame).
FrameProvider = Callable[[str], bytes | None]


@dataclass
class DashboardContext:
    """What every view may need: the store config (live: re-read when it changes) and frames."""

    live: LiveConfig
    frames: FrameProvider | None

    @property
    def config_path(self) -> Path:
        """The store YAML (the editor writes it back)."""
        return self.live.path

    @property
    def config(self) -> BoxConfig:
        """The config in use: the file's newest good version."""
        return self.live.current()

    def reload(self) -> BoxConfig:
        """Re-read the config file now (after the editor saved it)."""
        self.live.reload()
        return self.live.current()


def context() -> DashboardContext:
    """The running app's :class:`DashboardContext`."""
    ctx: DashboardContext = current_app.extensions["footfall"]
    return ctx
