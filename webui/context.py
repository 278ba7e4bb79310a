"""The dashboard's context: the store config and the camera frames every view may need.

:func:`webui.app.create_app` puts one :class:`DashboardContext` on the app; the pages
read it through :func:`context`, so that they import this module and not the app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from appliance.config import BoxConfig, load_config

#: camera id → the newest frame in the box's RAM ring buffer as JPEG bytes (None: no frame).
FrameProvider = Callable[[str], bytes | None]


@dataclass
class DashboardContext:
    """What every view may need: the store config (re-read after an edit) and the frames."""

    config_path: Path
    config: BoxConfig
    frames: FrameProvider | None

    def reload(self) -> BoxConfig:
        """Re-read the config file (after the editor saved it)."""
        self.config = load_config(self.config_path)
        return self.config


def context() -> DashboardContext:
    """The running app's :class:`DashboardContext`."""
    ctx: DashboardContext = current_app.extensions["footfall"]
    return ctx
