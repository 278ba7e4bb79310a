"""``footfall demo``: four stores and their hub on localhost.

1. **A hub** (SQLite, :mod:`lab.demo_hub`) with the stores registered in two regions,
   and a one-time setup token for its first admin.
2. **vtest.avi** (real video, the real pipeline): the bundled detector, ByteTrack and the
   demo homography turn the clip into track points stamped as if it had just been filmed;
   the engine computes its buckets, and the box pushes them to the hub once. The last
   seconds of frames stay in a RAM ring buffer, so the installer's calibration view has
   a picture.
3. **Three simulated stores** (JuPedSim, ``examples/sim/``: the supermarket, the corner
   shop, the fashion store): 45 minutes of history are written at once and analysed,
   then each goes on live, in real time, with the minute analytics job, the alert engine
   and the sync job (every 10 s) running on it. The fashion store's uplink is down for
   the first ``offline_s``: it backs off, keeps its outbox, and catches up afterwards.

Each store gets its own dashboard (and database, and one-time setup token).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml.comments import CommentedMap

from appliance.alerts import AlertEngine
from appliance.analytics.engine import analyze_range
from appliance.box.cameras import build_detector, process_file
from appliance.box.scheduler import BoxScheduler
from appliance.cli.sync import hub_target
from appliance.config import ConfigError, load_config
from appliance.config.editing import atomic_save, read_document
from appliance.config.yaml_loader import read_yaml_text
from lab.demo_hub import SYNC_EVERY_S, DemoHub, Uplink, start_hub
from lab.replay import SimReplay, simulate_scenario
from lab.summary import summarize
from local_db import DbWriter, connect
from local_db.backup import remove_database
from sync import Backoff, Sender
from vision.ring_buffer import FrameRingBuffer
from vision.snapshots import frame_provider
from webui import create_app
from webui.context import FrameProvider
from webui.serve import RunningServer, setup_token, start_server

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
VTEST_CONFIG = REPO / "examples" / "vtest.yaml"
VTEST_REGION = "uk"
SIMULATIONS = REPO / "examples" / "sim"
HISTORY_S = 45 * 60
#: The demo's sync retries quickly (a real box: up to 10 minutes between attempts).
DEMO_BACKOFF = Backoff(base_s=2.0, cap_s=15.0)


@dataclass(frozen=True)
class SimulatedStore:
    """One of the demo's simulated stores.

    Attributes:
        example: Its folder under ``examples/sim``.
        label: How the demo names it.
        region: Its hub region.
        minutes: Minutes of arrivals simulated.
        offline: Whether its uplink is down at first.
    """

    example: str
    label: str
    region: str
    minutes: int
    offline: bool = False


SIMULATED_STORES = (
    SimulatedStore("supermarket", "simulated supermarket (live)", "europe", 120),
    SimulatedStore("corner_shop", "simulated corner shop (live)", VTEST_REGION, 60),
    SimulatedStore(
        "fashion", "simulated fashion store (live; its uplink is down at first)", "europe", 60,
        offline=True,
    ),
)  # fmt: skip


@dataclass
class DemoStore:
    """One store of the demo: its dashboard's address and one-time setup token."""

    name: str
    url: str
    token: str | None
    server: RunningServer


def demo_config(
    example: Path, target: Path, db: Path, hub: dict[str, object] | None = None
) -> Path:
    """A copy of an example store config for the demo (the demo's editor changes the copy).

    The copy points at the demo database, sends no webhooks (the demo has no receiver) and
    sounds a simulated buzzer; a roster next to the example comes along. With ``hub`` (a
    ``hub:`` section) the box syncs to it every :data:`lab.demo_hub.SYNC_EVERY_S`.

    Returns:
        The copy's path.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    doc = read_document(read_yaml_text(example, ConfigError), str(example))
    roster = example.with_name("roster.csv")
    if roster.is_file():
        shutil.copyfile(roster, target.with_name(roster.name))

    root = doc.root
    root.setdefault("storage", CommentedMap())["db_path"] = str(db)
    alerting = root.get("alerting")
    if alerting is not None:
        alerting.pop("webhooks", None)
        if alerting.get("buzzer") is not None:
            alerting["buzzer"]["backend"] = "simulated"
    if hub is not None:
        root["hub"] = CommentedMap(hub)
        root.setdefault("runtime", CommentedMap())["sync_every_s"] = SYNC_EVERY_S
    target.unlink(missing_ok=True)  # a new copy, not an edit: no backup of the last demo's copy
    atomic_save(target, doc)
    return target


def _fresh(db: Path) -> Path:
    db.parent.mkdir(parents=True, exist_ok=True)
    remove_database(db)
    return db


def _serve(
    name: str, config: Path, db: Path, host: str, port: int, frames: FrameProvider | None = None
) -> DemoStore:
    app = create_app(config, db, frames=frames)
    server = start_server(app, host, port)
    return DemoStore(name, server.url, setup_token(app), server)


def _sender(config_path: Path, db: Path) -> Sender:
    return Sender(db, hub_target(load_config(config_path), config_path), backoff=DEMO_BACKOFF)


def video_store(video: Path, db: Path, host: str, port: int, hub: DemoHub) -> DemoStore:
    """The vtest.avi store: the real pipeline over the clip, analysed, pushed once, served."""
    section = hub.enrol(load_config(VTEST_CONFIG), db.parent, VTEST_REGION)
    config_path = demo_config(VTEST_CONFIG, db.with_suffix(".yaml"), db, section)
    config = load_config(config_path)
    camera = config.cameras[0]
    ring = FrameRingBuffer(config.ring_buffer.seconds, config.ring_buffer.max_mb << 20)
    duration_ms = 80_000  # 795 frames at 10 fps, rounded up
    start_ms = round(time.time() * 1000) - duration_ms
    stats = process_file(
        config,
        camera,
        build_detector(config, str(video)),
        str(video),
        _fresh(db),
        start_ms,
        on_frame=lambda frame, _tracks: ring.push(frame.t_s, frame.image),
    )
    conn = connect(db)
    try:
        analyze_range(conn, config, start_ms, start_ms + duration_ms)
    finally:
        conn.close()
    logger.info("vtest store: %d frames, %d points", stats.frames, stats.points)
    pushed = _sender(config_path, db).push()
    logger.info("vtest store: %s, %d rows to the hub", pushed.state, pushed.rows)

    frames = frame_provider({camera.id: ring})
    return _serve("vtest.avi (real video)", config_path, db, host, port, frames)


def simulated_store(
    spec: SimulatedStore,
    db: Path,
    address: tuple[str, int],
    hub: DemoHub,
    stop: threading.Event,
    offline_s: float,
) -> tuple[DemoStore, list[threading.Thread]]:
    """A simulated store: history at once, then live with analytics, alerts and sync.

    It reaches the hub through an :class:`lab.demo_hub.Uplink`; when ``spec.offline``
    the line is down for the first ``offline_s`` of the live run.
    """
    host, port = address
    example = SIMULATIONS / spec.example
    uplink = Uplink(hub.url, host)
    if not spec.offline:
        uplink.up.set()
    section = hub.enrol(load_config(example / "store.yaml"), db.parent, spec.region, uplink.url)
    config_path = demo_config(example / "store.yaml", db.with_suffix(".yaml"), db, section)
    config = load_config(config_path)
    sim = simulate_scenario(example / "scenario.yaml", seed=1, minutes=spec.minutes)
    writer = DbWriter(_fresh(db))
    writer.start()
    replay = SimReplay(sim, writer, speed=1.0, start_s=HISTORY_S)
    now_ms = round(time.time() * 1000)
    replay.step(now_ms / 1000)
    writer.flush(timeout=120)
    conn = connect(db)
    try:
        analyze_range(conn, config, now_ms - HISTORY_S * 1000, now_ms)
    finally:
        conn.close()
    alerts = AlertEngine(config_path, db)
    sender = _sender(config_path, db)
    scheduler = BoxScheduler(config, db, sync=sender)

    def replaying(stop: threading.Event) -> None:
        try:
            replay.run(stop)
            stop.wait()  # the simulated day is over; the dashboard stays up
        finally:
            writer.close()

    def alerting(stop: threading.Event) -> None:
        try:
            alerts.run(stop)
        finally:
            alerts.close()

    def reconnecting(stop: threading.Event) -> None:
        try:
            if spec.offline:
                _catch_up(spec, uplink, sender, offline_s, stop)
            stop.wait()
        finally:
            uplink.close()

    threads = [
        threading.Thread(target=run, args=(stop,), name=f"{spec.example}-{name}", daemon=True)
        for name, run in (
            ("replay", replaying),
            ("scheduler", scheduler.run),
            ("alerts", alerting),
            ("uplink", reconnecting),
        )
    ]
    for thread in threads:
        thread.start()
    store = _serve(spec.label, config_path, db, host, port)  # no cameras
    return store, threads


def _catch_up(
    spec: SimulatedStore, uplink: Uplink, sender: Sender, offline_s: float, stop: threading.Event
) -> None:
    """Bring the store's uplink up after ``offline_s`` and say when its outbox is empty."""
    if stop.wait(offline_s):
        return
    uplink.up.set()
    back = time.monotonic()
    print(f"{spec.label}: uplink back after {offline_s:g} s; catching up", flush=True)
    while not stop.wait(1.0):
        if sender.lag_s() == 0.0:
            print(
                f"{spec.label}: caught up {time.monotonic() - back:.0f} s later: "
                "every row is at the hub",
                flush=True,
            )
            return


def run_demo(
    folder: Path,
    video: Path,
    host: str,
    port: int,
    serve_s: float | None,
    stop: threading.Event,
    offline_s: float = 60.0,
) -> list[DemoStore]:
    """Build the hub and the stores, serve their dashboards, wait for ``stop`` (or ``serve_s``).

    Args:
        folder: where the databases go (recreated).
        video: vtest.avi.
        host: the address to serve on.
        port: the vtest store's port; the simulated stores get the next three, the hub
            the one after (0: any free).
        serve_s: stop after this many seconds (None: until ``stop`` is set).
        stop: set it to end the demo.
        offline_s: how long the fashion store's uplink is down once it is live.

    Returns:
        The stores, already stopped.
    """
    hub = start_hub(folder / "hub.db", host, port and port + 1 + len(SIMULATED_STORES))
    stores: list[DemoStore] = []
    threads: list[threading.Thread] = []
    try:
        stores.append(video_store(video, folder / "vtest.db", host, port, hub))
        print(summarize(str(folder / "vtest.db")), flush=True)
        for i, spec in enumerate(SIMULATED_STORES, 1):
            db = folder / spec.example / f"{spec.example}.db"
            address = (host, port and port + i)
            store, running = simulated_store(spec, db, address, hub, stop, offline_s)
            stores.append(store)
            threads += running
        for store in stores:
            print(f"{store.name}: {store.url}", flush=True)
            if store.token:
                print(f"  setup token (one use, creates the installer account): {store.token}")
        print(f"hub (the managers' dashboard, {len(stores)} stores): {hub.url}", flush=True)
        if hub.token:
            print(f"  hub setup token (one use, creates the first admin): {hub.token}")
        print("Ctrl-C stops the demo.", flush=True)
        stop.wait(serve_s)
    finally:
        stop.set()
        for store in stores:
            store.server.stop()
        for thread in threads:
            thread.join(timeout=30)
        hub.stop()
    return stores
