"""``footfall demo``: two stores on localhost, one from real video, one simulated and live.

1. **vtest.avi** (real video, the real pipeline): the bundled detector, ByteTrack and the
   demo homography turn the clip into track points stamped as if it had just been filmed;
   the engine computes its buckets. The last seconds of frames stay in a RAM ring buffer,
   so the installer's calibration view has a picture.
2. **A simulated supermarket** (JuPedSim, `examples/sim/supermarket`): 45 minutes of
   history are written at once and analysed, then the store goes on live, in real time,
   with the minute analytics job and the alert engine running on it.

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
from appliance.config import ConfigError, load_config
from appliance.config.editing import atomic_save, read_document
from appliance.config.yaml_loader import read_yaml_text
from lab.replay import SimReplay, simulate_scenario
from lab.summary import summarize
from local_db import DbWriter, connect
from local_db.backup import remove_database
from vision.ring_buffer import FrameRingBuffer
from vision.snapshots import frame_provider
from webui import create_app
from webui.context import FrameProvider
from webui.serve import RunningServer, setup_token, start_server

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
VTEST_CONFIG = REPO / "examples" / "vtest.yaml"
SIM_CONFIG = REPO / "examples" / "sim" / "supermarket" / "store.yaml"
SIM_SCENARIO = REPO / "examples" / "sim" / "supermarket" / "scenario.yaml"
HISTORY_S = 45 * 60
SIM_MINUTES = 120


@dataclass
class DemoStore:
    """One store of the demo: its dashboard's address and one-time setup token."""

    name: str
    url: str
    token: str | None
    server: RunningServer


def demo_config(example: Path, target: Path, db: Path) -> Path:
    """A copy of an example store config for the demo (the demo's editor changes the copy).

    The copy points at the demo database, sends no webhooks (the demo has no receiver) and
    sounds a simulated buzzer; a roster next to the example comes along.

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


def video_store(video: Path, db: Path, host: str, port: int) -> DemoStore:
    """The vtest.avi store: the real pipeline over the clip, analysed, then served."""
    config_path = demo_config(VTEST_CONFIG, db.with_suffix(".yaml"), db)
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

    frames = frame_provider({camera.id: ring})
    return _serve("vtest.avi (real video)", config_path, db, host, port, frames)


def simulated_store(
    db: Path, host: str, port: int, stop: threading.Event
) -> tuple[DemoStore, list[threading.Thread]]:
    """The simulated supermarket: history at once, then live with analytics and alerts."""
    config_path = demo_config(SIM_CONFIG, db.with_suffix(".yaml"), db)
    config = load_config(config_path)
    sim = simulate_scenario(SIM_SCENARIO, seed=1, minutes=SIM_MINUTES)
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
    scheduler = BoxScheduler(config, db)

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

    threads = [
        threading.Thread(target=run, args=(stop,), name=name, daemon=True)
        for name, run in (
            ("replay", replaying),
            ("scheduler", scheduler.run),
            ("alerts", alerting),
        )
    ]
    for thread in threads:
        thread.start()
    store = _serve("simulated supermarket (live)", config_path, db, host, port)  # no cameras
    return store, threads


def run_demo(
    folder: Path, video: Path, host: str, port: int, serve_s: float | None, stop: threading.Event
) -> list[DemoStore]:
    """Build both stores, serve their dashboards, wait for ``stop`` (or ``serve_s``).

    Args:
        folder: where the two databases go (recreated).
        video: vtest.avi.
        host: the address to serve on.
        port: the vtest store's port; the simulated store gets the next one (0: any free).
        serve_s: stop after this many seconds (None: until ``stop`` is set).
        stop: set it to end the demo.

    Returns:
        The stores, already stopped.
    """
    vtest = video_store(video, folder / "vtest.db", host, port)
    print(summarize(str(folder / "vtest.db")), flush=True)
    stores = [vtest]
    threads: list[threading.Thread] = []
    try:
        sim, threads = simulated_store(folder / "supermarket.db", host, port and port + 1, stop)
        stores.append(sim)
        for store in stores:
            print(f"{store.name}: {store.url}", flush=True)
            if store.token:
                print(f"  setup token (one use, creates the installer account): {store.token}")
        print("Ctrl-C stops the demo.", flush=True)
        stop.wait(serve_s)
    finally:
        stop.set()
        for store in stores:
            store.server.stop()
        for thread in threads:
            thread.join(timeout=30)
    return stores
