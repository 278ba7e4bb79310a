"""The one config model of a store's box: a YAML file validated by pydantic.

Every model forbids unknown keys, so a typo is an error, and every error is
reported as ``FILE:LINE: key.path: message`` (the line comes from the YAML
parser's node marks).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ValidationInfo,
    field_validator,
    model_validator,
)
from shapely.geometry import Polygon
from shapely.validation import explain_validity

from appliance.config.yaml_loader import (
    LocatedError,
    YamlIssue,
    YamlModelError,
    parse_model,
    read_yaml_text,
)
from vision.detectors import DetectorConfig, OnnxDetectorConfig
from vision.homography import CalibrationError, FloorMapping, fit_homography
from vision.tracking import TrackerSettings

CONFIG_VERSION = 1
#: caps that keep a config (an editor save, later a hub push) cheap to validate and use
MAX_ZONES = 200
MAX_LINES = 200
MAX_VERTICES = 200  # per zone
MAX_CALIBRATION_PAIRS = 100  # per camera
#: how far a zone or line may reach past the floor plan's edge: half the side (at least
#: PLAN_MARGIN_M), because a new drawing or a rescale changes the plan's size before the
#: installer has moved the zones (the editor must not refuse that step)
PLAN_MARGIN_M = 0.5
PLAN_MARGIN_SHARE = 0.5
_MIN_LINE_M = 0.001  # the editor rounds to millimetres
Point = tuple[float, float]
_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _hhmm_time(v: str) -> str:
    if not _HHMM.match(v):
        raise ValueError(f"{v!r} is not a HH:MM time")
    return v


class _Model(BaseModel):
    # every number finite: `.nan` or `.inf` is an error naming its key
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class OpeningHours(_Model):
    """Opening hours for some days of the week, local time."""

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    open: str
    close: str

    _hhmm = field_validator("open", "close")(_hhmm_time)


class StoreConfig(_Model):
    """Who and where the store is."""

    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    timezone: str
    opening_hours: list[OpeningHours] = Field(default_factory=list)
    capacity: int | None = Field(None, gt=0, description="most customers allowed inside")

    @field_validator("timezone")
    @classmethod
    def _iana(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{v!r} is not an IANA time zone") from exc
        return v


class CalibrationPair(_Model):
    """One image pixel and the floor point (metres) it shows."""

    image: Point
    floor: Point


class CameraConfig(_Model):
    """One camera.

    Attributes:
        source: ``rtsp://…``, ``http(s)://…``, ``usb:N``, a video file, or
            ``asset:vtest.avi`` (the demo video in the asset cache).
        fps: the camera's expected frame rate.
        resolution: ``[width, height]`` in pixels.
        calibration: at least four image↔floor pairs on the floor plane.
        loop: for file sources: start again at the end (a stand-in camera).
    """

    id: str = Field(pattern=_ID)
    source: str = Field(min_length=1)
    fps: float = Field(gt=0, le=120)
    resolution: tuple[int, int]
    calibration: list[CalibrationPair] = Field(min_length=4, max_length=MAX_CALIBRATION_PAIRS)
    loop: bool = False

    @model_validator(mode="after")
    def _calibration_fits(self) -> CameraConfig:
        w, h = self.resolution
        for i, pair in enumerate(self.calibration):
            u, v = pair.image
            if not (0 <= u <= w and 0 <= v <= h):
                raise ValueError(f"calibration[{i}].image {list(pair.image)} is outside {w}x{h}")
        self.floor_mapping()
        return self

    def floor_mapping(self) -> FloorMapping:
        """The image→floor homography fitted to this camera's calibration pairs."""
        try:
            return fit_homography(
                [p.image for p in self.calibration], [p.floor for p in self.calibration]
            )
        except CalibrationError as exc:
            raise ValueError(f"calibration: {exc}") from exc


class FloorPlan(_Model):
    """The floor plan: a rectangle in metres, origin at the top-left corner.

    Attributes:
        image: the drawing, a file in the config file's folder (or below it).
    """

    width_m: float = Field(gt=0, le=1000)
    depth_m: float = Field(gt=0, le=1000)
    image: str | None = None

    @field_validator("image")
    @classmethod
    def _in_config_folder(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        folder = (info.context or {}).get("folder")
        if isinstance(folder, Path):  # the file's folder is known: follow symlinks
            inside = (folder / v).resolve().is_relative_to(folder.resolve())
        else:
            lexical = os.path.normpath(v)
            inside = not os.path.isabs(v) and lexical != ".." and not lexical.startswith("../")
        if not inside:
            raise ValueError(
                f"{v!r} is outside the config file's folder (keep the image next to it)"
            )
        return v


class LineConfig(_Model):
    """A counting line from ``a`` to ``b``; ``in_side`` says which side is inside."""

    id: str = Field(pattern=_ID)
    a: Point
    b: Point
    in_side: Literal["left", "right"]

    @model_validator(mode="after")
    def _has_length(self) -> LineConfig:
        if math.dist(self.a, self.b) < _MIN_LINE_M:
            raise ValueError("a line needs two different points (at least 1 mm apart)")
        return self


class ZoneConfig(_Model):
    """A floor zone (polygon in metres)."""

    id: str = Field(pattern=_ID)
    kind: Literal["entrance", "display", "queue", "service_point", "checkout", "staff_only"]
    polygon: list[Point] = Field(min_length=3, max_length=MAX_VERTICES)

    @model_validator(mode="after")
    def _simple_with_area(self) -> ZoneConfig:
        shape = Polygon(self.polygon)
        flat = shape.convex_hull.area <= 1e-6  # all its points on one line
        if not flat and not shape.is_valid:  # edges that cross or touch: no clear inside
            raise LocatedError(
                ("polygon",), f"polygon is not a simple shape: {explain_validity(shape)}"
            )
        if flat or shape.area <= 1e-6:
            raise ValueError("polygon has no area")
        return self


class ActiveHours(_Model):
    """When a rule may raise (store local time); ``end`` before ``start`` spans midnight."""

    days: list[Day] = Field(default_factory=lambda: list(DAYS), min_length=1)
    start: str = "00:00"
    end: str = "24:00"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if v != "24:00" and not _HHMM.match(v):
            raise ValueError(f"{v!r} is not a HH:MM time")
        return v


AlertKind = Literal[
    "queue_length",
    "predicted_wait",
    "density",
    "store_occupancy",
    "zone_occupancy_above",
    "zone_occupancy_below",
    "staffing_gap",
    "customers_per_staff",
    "camera_down",
    "sync_lag",
    "disk_low",
]
#: kinds that raise when the value falls (the others raise when it rises)
FALLING_KINDS = frozenset({"zone_occupancy_below", "disk_low"})
#: what ``target`` may name per kind: zone kinds, "camera", or nothing (None);
#: ``optional`` kinds may leave it out (every queue / camera, or the whole store)
_CUSTOMER_ZONES = frozenset({"entrance", "display", "queue", "service_point", "checkout"})
_TARGETS: dict[str, tuple[frozenset[str] | None, bool]] = {
    "queue_length": (frozenset({"queue"}), True),
    "predicted_wait": (frozenset({"queue"}), True),
    "density": (_CUSTOMER_ZONES, True),
    "store_occupancy": (None, True),
    "zone_occupancy_above": (_CUSTOMER_ZONES, False),
    "zone_occupancy_below": (_CUSTOMER_ZONES, False),
    "staffing_gap": (_CUSTOMER_ZONES, False),
    "customers_per_staff": (_CUSTOMER_ZONES, True),
    "camera_down": (frozenset({"camera"}), True),
    "sync_lag": (None, True),
    "disk_low": (None, True),
}


class AlertRule(_Model):
    """An alert rule, evaluated every second by the alert engine (``appliance/alerts``).

    Attributes:
        kind: what is measured (units in the README's "Alerts" section).
        target: the zone or camera it applies to; left out: every queue / camera, or
            the whole store, where the kind allows.
        raise_at: the value at which the alert raises.
        clear_at: the value at which it clears (hysteresis band).
        min_duration_s: the condition must hold this long before raising.
        cooldown_s: minimum time between two raises.
        of_capacity: ``store_occupancy`` only: thresholds in percent of ``store.capacity``.
    """

    id: str = Field(pattern=_ID)
    kind: AlertKind
    target: str | None = None
    severity: Literal["info", "warning", "critical"] = "warning"
    raise_at: float
    clear_at: float
    min_duration_s: float = Field(0, ge=0)
    cooldown_s: float = Field(0, ge=0)
    active_hours: ActiveHours = Field(default_factory=ActiveHours)
    of_capacity: bool = False

    @property
    def falling(self) -> bool:
        """Whether the alert raises when the value falls (below ``raise_at``)."""
        return self.kind in FALLING_KINDS

    @model_validator(mode="after")
    def _hysteresis(self) -> AlertRule:
        if (self.clear_at <= self.raise_at) if self.falling else (self.clear_at >= self.raise_at):
            way = "above" if self.falling else "below"
            raise ValueError(f"clear_at must be {way} raise_at (hysteresis)")
        if self.of_capacity and self.kind != "store_occupancy":
            raise LocatedError(("of_capacity",), "of_capacity is for store_occupancy rules only")
        return self


class WebhookConfig(_Model):
    """A URL that receives every alert raised and cleared as signed JSON.

    Attributes:
        url: ``http(s)://`` endpoint (POST).
        secret_env: the environment variable holding the HMAC-SHA256 key.
        min_severity: only alerts at least this severe are sent.
        timeout_s: per attempt.
        max_attempts: tries before a delivery is given up (logged).
        retry_base_s: the first retry's delay; it doubles per attempt (at most 300 s).
    """

    url: str = Field(pattern=r"^https?://\S+$")
    secret_env: str = Field("FOOTFALL_WEBHOOK_SECRET", pattern=r"^[A-Z_][A-Z0-9_]*$")
    min_severity: Literal["info", "warning", "critical"] = "info"
    timeout_s: float = Field(5.0, gt=0, le=60)
    max_attempts: int = Field(6, ge=1, le=50)
    retry_base_s: float = Field(2.0, gt=0, le=300)


class BuzzerConfig(_Model):
    """A buzzer (or light) on a GPIO line: on while an unacknowledged alert is active.

    Attributes:
        backend: ``gpiod`` (the Jetson's GPIO character device) or ``simulated``.
        chip: the GPIO chip device.
        line: the line offset on that chip.
        active_low: the buzzer sounds when the line is low.
        min_severity: alerts at least this severe sound it.
    """

    backend: Literal["gpiod", "simulated"] = "gpiod"
    chip: str = "/dev/gpiochip0"
    line: int = Field(ge=0)
    active_low: bool = False
    min_severity: Literal["info", "warning", "critical"] = "critical"


class AlertingConfig(_Model):
    """How alerts are evaluated and delivered (the rules are in ``alerts``).

    Attributes:
        roster: staff roster CSV for ``customers_per_staff`` (relative to the config file).
        window_s: a person counts as present if seen within this many seconds.
        webhooks: where alerts are POSTed.
        buzzer: the GPIO buzzer, if the box has one.
    """

    roster: str | None = None
    window_s: float = Field(3.0, gt=0, le=10)
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    buzzer: BuzzerConfig | None = None


class StorageConfig(_Model):
    """Where the box keeps its SQLite file and for how long raw points live."""

    db_path: str = "/var/lib/footfall/footfall.db"
    track_retention_hours: float = Field(72, gt=0, le=24 * 365)


class RingBufferConfig(_Model):
    """The RAM-only frame buffer for the installer's live view."""

    seconds: float = Field(10, gt=0, le=60)
    max_mb: int = Field(64, gt=0, le=4096)


class WebConfig(_Model):
    """The store dashboard's HTTP server.

    Attributes:
        https: the dashboard is served over HTTPS (a TLS proxy in front); session cookies
            are then marked ``Secure``.
        session_hours: how long a sign-in lasts (from signing in, however busy).
        session_idle_minutes: a sign-in unused for this long ends.
        login_attempts: failed sign-ins allowed per client address in 5 minutes; beyond as
            many for one username, the addresses that failed it wait longer and longer.
        trusted_proxies: networks of the reverse proxies whose ``X-Forwarded-For``,
            ``-Proto`` and ``-Host`` are believed (no one's by default).
    """

    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    https: bool = False
    session_hours: float = Field(12, gt=0, le=24 * 30)
    session_idle_minutes: float = Field(120, gt=0, le=24 * 60 * 30)
    login_attempts: int = Field(5, ge=1, le=100)
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list, max_length=64)


class RuntimeConfig(_Model):
    """How ``footfall run`` schedules its jobs and supervises its workers.

    Attributes:
        analytics_every_s: how often the analytics job looks for closed 5-minute buckets.
        late_grace_s: a bucket is analysed this long after it closes (late points),
            and recomputed once more when the next bucket is.
        maintenance_at: local time of the nightly retention, vacuum and optimize.
        sync_every_s: how often the sync job runs (when a sync is wired in).
        weekly_report_day: local day of the weekly report (when one is wired in).
        weekly_report_at: local time of the weekly report.
        max_restarts: crashes of one camera worker or service allowed in ``restart_window_s``.
        restart_window_s: the sliding window of the restart budget.
        restart_backoff_max_s: the longest pause between restarts within the budget
            (the pause doubles from 1 s).
        down_retry_s: beyond the budget, the worker is marked down and retried this often.
        stall_s: a camera that is up but has delivered no frame for this long stops the
            systemd watchdog (a hung thread can only be cured by restarting the process).
        disk_free_min_mb: below this much free space the box reports itself degraded.
    """

    analytics_every_s: int = Field(60, ge=5, le=3600)
    late_grace_s: int = Field(60, ge=0, le=3600)
    maintenance_at: str = "03:30"
    sync_every_s: int = Field(300, ge=10, le=86400)
    weekly_report_day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    weekly_report_at: str = "07:00"
    max_restarts: int = Field(5, ge=1, le=1000)
    restart_window_s: float = Field(600, gt=0, le=86400)
    restart_backoff_max_s: float = Field(60, ge=1, le=3600)
    down_retry_s: float = Field(300, ge=1, le=86400)
    stall_s: float = Field(120, ge=10, le=3600)
    disk_free_min_mb: int = Field(1024, ge=0)

    _hhmm = field_validator("maintenance_at", "weekly_report_at")(_hhmm_time)


class HubConfig(_Model):
    """The hub this box pushes its aggregates to (``footfall run``'s sync, ``footfall sync``).

    The sync runs every ``runtime.sync_every_s``. The secret is never in this file.

    Attributes:
        url: the hub's base URL (``https://hub.example``; the batches go to
            ``/api/v1/batches`` under it).
        store_id: this store's id at the hub (default: ``store.id``).
        secret_file: a file holding the store's signing secret (``whsec_…``, one a line;
            two while it is rotated), relative to the config file.
        secret_env: or the environment variable holding it (space-separated).
    """

    url: str = Field(pattern=r"^https?://[^\s/?#@]+(/[^\s?#]*)?$")
    store_id: str | None = Field(None, pattern=_ID)
    secret_file: str | None = Field(None, min_length=1)
    secret_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")

    @model_validator(mode="after")
    def _one_secret(self) -> HubConfig:
        if (self.secret_file is None) == (self.secret_env is None):
            raise ValueError("set exactly one of secret_file and secret_env")
        return self


class BoxConfig(_Model):
    """The whole box: one file per store."""

    config_version: Literal[1]
    store: StoreConfig
    detector: Annotated[DetectorConfig, Field(default_factory=OnnxDetectorConfig)]
    tracker: TrackerSettings = Field(default_factory=TrackerSettings)
    cameras: list[CameraConfig] = Field(min_length=1, max_length=8)
    floor_plan: FloorPlan
    lines: list[LineConfig] = Field(default_factory=list, max_length=MAX_LINES)
    zones: list[ZoneConfig] = Field(default_factory=list, max_length=MAX_ZONES)
    alerts: list[AlertRule] = Field(default_factory=list)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    ring_buffer: RingBufferConfig = Field(default_factory=RingBufferConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    hub: HubConfig | None = None

    @model_validator(mode="after")
    def _unique_and_known(self) -> BoxConfig:
        groups: tuple[tuple[str, Sequence[CameraConfig | LineConfig | ZoneConfig]], ...] = (
            ("cameras", self.cameras),
            ("lines", self.lines),
            ("zones", self.zones),
        )
        for kind, items in groups:
            seen: set[str] = set()
            for i, item in enumerate(items):
                if item.id in seen:
                    raise LocatedError((kind, i, "id"), f"duplicate id {item.id!r}")
                seen.add(item.id)
        self._check_on_plan()
        self._check_alerts()
        return self

    def _check_on_plan(self) -> None:
        w, d = self.floor_plan.width_m, self.floor_plan.depth_m
        mx, my = (max(PLAN_MARGIN_M, PLAN_MARGIN_SHARE * side) for side in (w, d))
        where = f"outside the floor plan (0..{w:g} x 0..{d:g} m, {mx:g} x {my:g} m margin)"

        def check(loc: tuple[int | str, ...], x: float, y: float) -> None:
            if not (-mx <= x <= w + mx and -my <= y <= d + my):
                raise LocatedError(loc, f"[{x:g}, {y:g}] is {where}")

        for i, line in enumerate(self.lines):
            check(("lines", i, "a"), *line.a)
            check(("lines", i, "b"), *line.b)
        for i, zone in enumerate(self.zones):
            for j, (x, y) in enumerate(zone.polygon):
                check(("zones", i, "polygon", j), x, y)

    def _check_alerts(self) -> None:
        kinds = {c.id: "camera" for c in self.cameras} | {z.id: z.kind for z in self.zones}
        seen: set[str] = set()
        for i, rule in enumerate(self.alerts):
            if rule.id in seen:
                raise LocatedError(("alerts", i, "id"), f"duplicate id {rule.id!r}")
            seen.add(rule.id)
            allowed, optional = _TARGETS[rule.kind]
            if rule.target is None:
                if not optional:
                    raise LocatedError(("alerts", i), f"a {rule.kind} rule needs a target")
            elif rule.target not in kinds:
                raise LocatedError(
                    ("alerts", i, "target"), f"no camera or zone has the id {rule.target!r}"
                )
            elif allowed is None or kinds[rule.target] not in allowed:
                wants = " or ".join(sorted(allowed)) if allowed else "no target"
                raise LocatedError(
                    ("alerts", i, "target"),
                    f"{rule.target!r} is a {kinds[rule.target]}; a {rule.kind} rule takes {wants}",
                )
            if rule.of_capacity and self.store.capacity is None:
                raise LocatedError(("alerts", i, "of_capacity"), "store.capacity is not set")
            if rule.kind == "customers_per_staff" and self.alerting.roster is None:
                raise LocatedError(
                    ("alerts", i, "kind"), "customers_per_staff needs alerting.roster"
                )

    def camera(self, camera_id: str) -> CameraConfig:
        """The camera with this id.

        Raises:
            KeyError: no such camera.
        """
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(f"no camera {camera_id!r} in the config")


ConfigIssue = YamlIssue


class ConfigError(YamlModelError):
    """A config file is unreadable or invalid; ``issues`` has every problem."""


_UNION_TAGS = frozenset({"onnx", "ultralytics", "tensorrt"})


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # pydantic puts the detector union's tag after "detector"; it is not a key in the file
    if len(loc) > 1 and loc[0] == "detector" and loc[1] in _UNION_TAGS:
        return loc[:1] + loc[2:]
    return loc


def parse_config(text: str, file: str = "<config>", *, folder: Path | None = None) -> BoxConfig:
    """Parse and validate YAML text.

    Args:
        text: the YAML.
        file: the name used in messages.
        folder: the config file's folder, if it has one: ``floor_plan.image`` must
            resolve inside it (symlinks followed); without it, the path itself may not
            be absolute or climb out with ``..``.

    Raises:
        ConfigError: YAML syntax errors or validation errors, each with its line.
    """
    return parse_model(BoxConfig, text, file, ConfigError, _clean_loc, {"folder": folder})


def load_config(path: str | Path) -> BoxConfig:
    """Read and validate a store's YAML file.

    Raises:
        ConfigError: the file is missing, unreadable or invalid.
    """
    return parse_config(read_yaml_text(path, ConfigError), str(path), folder=Path(path).parent)
