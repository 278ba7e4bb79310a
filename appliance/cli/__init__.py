"""The ``footfall`` command line.

Exit codes: 0 success, 1 runtime failure, 2 bad input (config, arguments, files).
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vision.sources import Frame
    from vision.types import Tracks
    from vision.worker import WorkerStats

from appliance.box.logs import setup_logging
from appliance.cli.alerts import add_alerts_parser
from appliance.cli.db import add_db_parser
from appliance.cli.doctor import add_doctor_parser
from appliance.cli.firstboot import add_firstboot_parser
from appliance.cli.privacy import add_privacy_parser
from appliance.cli.sync import add_sync_parser
from appliance.cli.update import add_update_parser
from appliance.cli.web import add_web_parser
from appliance.config import BoxConfig, CameraConfig, ConfigError, load_config
from cloud_hub.cli import add_hub_parser
from cloud_hub.release_cli import add_release_parser

logger = logging.getLogger("footfall")

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
LAB_MISSING = (
    "footfall-lab is not installed: this is a box install; the lab comes with a dev checkout "
    "(`make venv`)"
)


def _parse_utc(text: str) -> int:
    from appliance.analytics.export import year_error

    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time") from exc
    problem = year_error(dt, text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


def cmd_config_check(args: argparse.Namespace) -> int:
    """Validate a config file; print every error as FILE:LINE: key.path: message."""
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{args.file}: OK (store {config.store.id}, {len(config.cameras)} camera(s))")
    for cam in config.cameras:
        m = cam.floor_mapping()
        print(
            f"  camera {cam.id}: {len(cam.calibration)} calibration pairs, reprojection error "
            f"{m.reprojection_error_m * 100:.2f} cm RMS, {m.max_error_m * 100:.2f} cm max"
        )
    return EXIT_OK


def cmd_vision(args: argparse.Namespace) -> int:
    """Process one video file as fast as possible into track_points."""
    video = Path(args.video)
    if not video.is_file():
        print(f"{video}: no such video file", file=sys.stderr)
        return EXIT_BAD_INPUT
    config: BoxConfig = args.config
    camera = config.camera(args.camera) if args.camera else config.cameras[0]
    start = args.start_utc if args.start_utc is not None else round(video.stat().st_mtime * 1000)
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    stats = _process_video(
        config, camera, video, Path(args.db), start, args.mot_out, args.max_frames, args.quiet
    )
    print(
        f"{stats.frames} frames at {stats.fps:.1f} fps, {stats.points} track points, "
        f"{len(stats.track_ids)} tracks, {stats.persons_per_frame:.2f} persons/frame → {args.db}"
    )
    return EXIT_OK


def _process_video(
    config: BoxConfig,
    camera: CameraConfig,
    video: Path,
    db: Path,
    start_utc_ms: int,
    mot_out: str | None,
    max_frames: int | None,
    quiet: bool,
) -> WorkerStats:
    from tqdm import tqdm

    from appliance.box.cameras import build_detector, process_file
    from vision.mot_format import MotRow, write_mot
    from vision.sources import frame_count

    rows: list[MotRow] = []
    bar = tqdm(total=frame_count(video), unit="frame", disable=quiet or None, file=sys.stderr)
    stop = threading.Event()

    def on_frame(frame: Frame, tracks: Tracks) -> None:
        bar.update(1)
        if max_frames is not None and frame.index + 1 >= max_frames:
            stop.set()
        if mot_out:
            for (x1, y1, x2, y2), tid, conf in zip(
                tracks.xyxy.tolist(), tracks.track_ids.tolist(), tracks.conf.tolist(), strict=True
            ):
                rows.append(MotRow(frame.index + 1, tid, x1, y1, x2 - x1, y2 - y1, conf))

    detector = build_detector(config, str(video))
    stats = process_file(
        config, camera, detector, str(video), db, start_utc_ms, on_frame=on_frame, stop=stop
    )
    bar.close()
    if mot_out:
        write_mot(rows, mot_out)
    return stats


def cmd_run(args: argparse.Namespace) -> int:
    """Run the box until SIGTERM: cameras, scheduler, alert engine and the dashboard."""
    from appliance.alerts import AlertEngine, AlertSetupError, RosterError, Transition
    from appliance.alerts.measures import SystemState, measure_system
    from appliance.analytics.live import LiveSnapshot
    from appliance.box.runtime import Box
    from appliance.box.scheduler import BoxScheduler
    from appliance.cli.alerts import report_setup_error
    from appliance.cli.sync import SyncSetupError, box_sender
    from appliance.config.live import LiveConfig
    from webui import create_app
    from webui.ops import WebServer, ops_blueprint
    from webui.serve import setup_token

    try:
        live = LiveConfig(args.config)  # the one config every part reads (and reloads)
        config = live.current()
        box = Box(live, Path(args.db).expanduser() if args.db else None)
        box.db_path.parent.mkdir(parents=True, exist_ok=True)
        # the hub section is read once, at start (a change needs a restart)
        sender = box_sender(config, live, box) if config.hub else None

        def system() -> SystemState:
            return measure_system(box.db_path, None if sender is None else sender.lag_s())

        def report(snap: LiveSnapshot, transitions: list[Transition]) -> None:
            box.health.customers_queued(snap.queue_lengths)
            box.health.service_state("alerts", "running", "; ".join(alerts.errors))
            for t in transitions:
                if t.action == "raise":
                    box.health.alert_raised(t.rule.id)

        alerts = AlertEngine(live, box.db_path, system=system, on_tick=report)
    except (ConfigError, RosterError, AlertSetupError) as exc:
        return report_setup_error(exc)
    except SyncSetupError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    app = create_app(
        live, box.db_path, frames=box.frame_jpeg, blueprints=[ops_blueprint(box.health)]
    )
    host, port = args.listen or (config.web.host, config.web.port)
    if sender is not None:
        box.health.register_sync_lag(sender.lag_s)
    box.add_service(BoxScheduler(live, box.db_path, health=box.health, sync=sender))
    box.add_service(alerts)
    box.add_service(WebServer(app, host, port))
    token = setup_token(app)
    if token:
        print(f"setup token (one use, creates the installer account): {token}", flush=True)
    try:
        box.run_until_signal()
    finally:
        alerts.close()
    return EXIT_OK


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def cmd_bench_vision(args: argparse.Namespace) -> int:
    """Our pipeline vs ultralytics' stock loop on the same model and video."""
    from lab import DEMO_STORE
    from lab.bench.vision import bench_vision
    from vision.assets import demo_video

    video = Path(args.video) if args.video else demo_video()
    result = bench_vision(args.config or load_config(DEMO_STORE), video, args.frames)
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    print(
        f"footfall bench vision — {result['video']} at {result['input_size']}, {result['machine']}"
    )
    print(f"{'run':<30} {'fps':>7} {'persons/frame':>14} {'tracks':>7} {'MAE vs hand':>12}")
    for run in result["runs"]:  # type: ignore[attr-defined]
        mae = "n/a" if run["hand_count_mae"] is None else f"{run['hand_count_mae']:.2f}"
        print(
            f"{run['name']:<30} {run['fps']:>7.2f} {run['persons_per_frame']:>14.2f} "
            f"{run['unique_tracks']:>7} {mae:>12}"
        )
    print(f"ratio (ours / faster peer): {result['ratio']}x")
    return EXIT_OK


def cmd_bench_analytics(args: argparse.Namespace) -> int:
    """Engine throughput vs supervision, and a busy day recomputed."""
    from lab.bench.analytics import bench_analytics

    r = bench_analytics(args.visitors)
    if args.json:
        print(json.dumps(r))
        return EXIT_OK
    print(f"footfall bench analytics — {r['cores']} cores")
    print(
        f"counting + occupancy + heatmap: ours {r['ours_points_per_s']:,} points/s "
        f"({r['throughput_points']:,} points), supervision LineZone + PolygonZone "
        f"{r['peer_points_per_s']:,} points/s → {r['ratio']}x"
    )
    print(
        f"busy day ({r['day_visitors']} visitors, {r['day_cameras']} cameras, "
        f"{r['day_points']:,} points): recomputed in {r['day_recompute_s']} s, "
        f"{r['day_door_ins']} door ins"
    )
    return EXIT_OK


def _positive_int(text: str) -> int:
    """An argparse type: a whole number ≥ 1 (exit 2 with the reason otherwise)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def cmd_bench_hub(args: argparse.Namespace) -> int:
    """The hub's ingest rate against a raw COPY, and its pages' server time on a year."""
    from lab.bench.hub import bench_hub

    r = bench_hub(args.stores, args.days, args.history_days, args.workers, args.repeat,
                  args.backend or ("postgresql", "sqlite"))  # fmt: skip
    if args.json:
        print(json.dumps(r))
        return EXIT_OK
    print(f"footfall bench hub — {r['stores']} stores, {r['cores']} cores, load {r['load_1min']}")
    for backend, got in r["ingest"].items():
        copied = f", {got['ratio_vs_copy']}x a raw COPY" if "ratio_vs_copy" in got else ""
        print(f"ingest {backend}: {got['rows']:,} rows in {got['seconds']} s, "
              f"{got['rows_per_s']:,} rows/s{copied}")  # fmt: skip
    for backend, pages in r["pages"].items():
        print(f"pages {backend} ({r['history_days']} days loaded, {pages['db_mb']} MB):")
        for p in pages["pages"]:
            print(f"  {p['role']:<8} {p['page']:<16} mean {p['mean_ms']:>7.1f} ms  "
                  f"max {p['max_ms']:>7.1f} ms  {p['kb']:>7.1f} KB")  # fmt: skip
    return EXIT_OK


def cmd_bench_webui(args: argparse.Namespace) -> int:
    """The dashboard's server time per page on a month of synthetic aggregates."""
    from lab.bench.webui import bench_webui

    r = bench_webui(args.repeat)
    if args.json:
        print(json.dumps(r))
        return EXIT_OK
    print(f"footfall bench webui — {r['cores']} cores, median of {r['repeat']} requests")
    print(
        f"data: {r['data']}: {r['days']} days of 5-minute buckets, {r['zones']} zones, "
        f"{sum(r['rows'].values()):,} rows, {r['db_mb']} MB (filled in {r['fill_s']} s)"
    )
    print(f"{'page':<24} {'full ms':>8} {'(cpu)':>6} {'fragment ms':>12} {'(cpu)':>6} {'KB':>6}")
    for p in r["pages"]:
        print(
            f"{p['page']:<24} {p['full_ms']:>8.1f} {p['full_cpu_ms']:>6.1f} "
            f"{p['fragment_ms']:>12.1f} {p['fragment_cpu_ms']:>6.1f} {p['fragment_kb']:>6.1f}"
        )
    verdict = "within" if r["worst_ms"] < r["target_ms"] else "OVER"
    print(
        f"slowest: {r['worst_ms']} ms wall, {r['worst_cpu_ms']} ms CPU ({verdict} the "
        f"{r['target_ms']:.0f} ms target in wall time; load average {r['load_1min']})"
    )
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    """Simulate a store scenario; write observations.csv (the ingest format) and truth.json."""
    from lab.sim import LayoutError, ScenarioError, simulate_file

    try:
        sim = simulate_file(args.scenario, args.seed)
    except (ScenarioError, LayoutError) as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sim.write_csv(out / "observations.csv")
    (out / "truth.json").write_text(sim.truth_json(indent=1))
    print(
        f"{sim.stats.customers} customers, {sim.stats.staff} staff, "
        f"{sim.stats.simulated_s:.0f} s simulated in {sim.stats.wall_s:.1f} s → {out}"
    )
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """Feed a simulated store into a database as time passes (live data without cameras)."""
    import signal

    from lab.replay import ReplayError, SimReplay, simulate_scenario
    from lab.sim import LayoutError, ScenarioError
    from local_db import DbWriter, MigrationError

    if args.speed <= 0 or args.start_s < 0:
        print("replay: --speed must be positive and --start-s not negative", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        sim = simulate_scenario(args.scenario, args.seed, args.minutes)
    except (ScenarioError, LayoutError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    db = Path(args.db).expanduser()
    db.parent.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    writer = DbWriter(db)
    try:
        writer.start()
    except (sqlite3.Error, MigrationError) as exc:
        print(f"replay: cannot open {db}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    with writer:
        replay = SimReplay(sim, writer, speed=args.speed, start_s=args.start_s)
        print(f"replaying {sim.scenario} at {args.speed:g}x into {db}", flush=True)
        try:
            progress = replay.run(stop, write_timeout_s=args.write_timeout_s)
        except ReplayError as exc:
            writer.abort()
            print(f"replay: {exc}", file=sys.stderr)
            return EXIT_FAIL
    print(
        f"{progress.points} of {progress.total_points} observations and "
        f"{progress.events} camera events written"
    )
    return EXIT_OK


def cmd_accuracy(args: argparse.Namespace) -> int:
    """The engine against simulated ground truth, per layout, seed and noise mode."""
    from lab.accuracy import markdown, replace_block, run_scenario, summary_row

    rows, runs = [], []
    for layout in args.layouts:
        for mode in ("perfect", "realistic"):
            group = [
                run_scenario(layout, seed, mode, args.duration) for seed in range(1, args.seeds + 1)
            ]
            runs += group
            rows.append(summary_row(group))
    if args.json:
        print(
            json.dumps(
                [{"layout": r.layout, "seed": r.seed, "mode": r.mode, **r.errors} for r in runs]
            )
        )
    else:
        print(markdown(rows))
    if args.readme:
        readme = Path(args.readme)
        readme.write_text(replace_block(readme.read_text(), markdown(rows)))
    return EXIT_OK


def cmd_eval_mot(args: argparse.Namespace) -> int:
    """MOTA / IDF1 / HOTA of a result file, or of our tracker run on a video."""
    import tempfile

    from lab import DEMO_STORE
    from lab.mot_eval import evaluate_mot, format_scores
    from vision.mot_format import MotFormatError

    try:
        if args.result:
            scores = evaluate_mot(args.gt, args.result, iou_threshold=args.iou)
        else:
            video = Path(args.video)
            if not video.is_file():
                print(f"{video}: no such video file", file=sys.stderr)
                return EXIT_BAD_INPUT
            config: BoxConfig = args.config or load_config(DEMO_STORE)
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "result.txt"
                _process_video(
                    config,
                    config.cameras[0],
                    video,
                    Path(tmp) / "eval.db",
                    0,
                    str(out),
                    args.max_frames,
                    args.json,
                )
                scores = evaluate_mot(args.gt, out, iou_threshold=args.iou)
    except (MotFormatError, FileNotFoundError) as exc:
        print(f"eval-mot: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(scores.as_dict()) if args.json else format_scores(scores))
    return EXIT_OK


def _open_db(config: BoxConfig, db: str | None) -> sqlite3.Connection:
    from local_db import connect, migrate

    path = Path(db).expanduser() if db else Path(config.storage.db_path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    migrate(conn)
    return conn


def cmd_ingest(args: argparse.Namespace) -> int:
    """Import a trajectory CSV (all rows or none)."""
    from appliance.analytics.ingest import IngestError, ingest_csv

    conn = _open_db(args.config, args.db)
    try:
        n = ingest_csv(conn, Path(args.csv), args.config)
    except IngestError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        conn.close()
    print(f"{n} rows imported from {args.csv}")
    return EXIT_OK


def cmd_analyze(args: argparse.Namespace) -> int:
    """Recompute the 5-minute aggregate buckets of a time range."""
    from appliance.analytics.engine import analyze_range

    if args.to_utc <= args.from_utc:
        print("analyze: --to must be after --from", file=sys.stderr)
        return EXIT_BAD_INPUT
    conn = _open_db(args.config, args.db)
    try:
        result = analyze_range(conn, args.config, args.from_utc, args.to_utc)
    finally:
        conn.close()
    crossings = result.crossings
    print(
        f"analyzed {args.config.store.id}: {crossings['direction'].eq('in').sum()} in, "
        f"{crossings['direction'].eq('out').sum()} out, {len(result.visits)} zone visits, "
        f"{result.staff_people} staff excluded"
    )
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """Write an aggregate table (rolled up, k-suppressed) as CSV or Parquet."""
    from appliance.analytics.export import ExportError, read_table, write

    conn = _open_db(args.config, args.db)
    try:
        df = read_table(
            conn,
            args.table,
            args.from_utc,
            args.to_utc,
            period=args.period,
            tz=args.config.store.timezone,
            k=args.k,
        )
        write(df, Path(args.out), args.format)
    except ExportError as exc:
        print(f"export: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        conn.close()
    print(f"{len(df)} rows of {args.table} → {args.out}")
    return EXIT_OK


def _config_arg(path: str) -> BoxConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError("\n" + str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also read by the docs test)."""
    parser = argparse.ArgumentParser(
        prog="footfall", description="Privacy-first footfall analytics appliance."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.set_defaults(log_format="text")
    sub = parser.add_subparsers(dest="command", required=True)

    config = sub.add_parser("config", help="store config tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a store YAML file")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)

    vision = sub.add_parser("vision", help="process a video file into track_points")
    vision.add_argument("--config", type=_config_arg, required=True)
    vision.add_argument("--video", required=True)
    vision.add_argument("--db", required=True, help="SQLite file to write")
    vision.add_argument("--camera", help="camera id whose calibration to use (default: first)")
    vision.add_argument("--start-utc", type=_parse_utc, help="UTC time of the first frame")
    vision.add_argument("--mot-out", help="also write MOTChallenge tracks (image boxes) here")
    vision.add_argument("--max-frames", type=int, help="stop after this many frames")
    vision.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    vision.set_defaults(func=cmd_vision)

    run = sub.add_parser(
        "run", help="run the box (cameras, scheduled jobs, alerts, dashboard) until SIGTERM"
    )
    run.add_argument("--config", required=True, help="the store YAML")
    run.add_argument("--db", help="SQLite file (default: storage.db_path)")
    run.add_argument(
        "--listen",
        type=_host_port,
        help="serve the dashboard, /healthz and /metrics on HOST:PORT (default: web.host:web.port)",
    )
    run.add_argument(
        "--log-format", choices=["text", "json"], default="text", help="json: one object a line"
    )
    run.set_defaults(func=cmd_run)

    bench = sub.add_parser("bench", help="benchmarks against peers")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    bv = bench_sub.add_parser("vision", help="our pipeline vs ultralytics' stock loop")
    bv.add_argument("--config", type=_config_arg, help="default: the demo store (examples/)")
    bv.add_argument("--video", help="default: vtest.avi from the asset cache")
    bv.add_argument("--frames", type=int, help="stop after this many frames")
    bv.add_argument("--json", action="store_true", help="one JSON object")
    bv.set_defaults(func=cmd_bench_vision)
    ba = bench_sub.add_parser("analytics", help="engine throughput and a busy day")
    ba.add_argument("--visitors", type=int, default=3000)
    ba.add_argument("--json", action="store_true", help="one JSON object")
    ba.set_defaults(func=cmd_bench_analytics)
    bw = bench_sub.add_parser("webui", help="dashboard server time per page on a month of data")
    bw.add_argument("--repeat", type=int, default=7, help="requests per page (the median)")
    bw.add_argument("--json", action="store_true", help="one JSON object")
    bw.set_defaults(func=cmd_bench_webui)
    bh = bench_sub.add_parser("hub", help="hub ingest vs a raw COPY, pages on a year of stores")
    bh.add_argument("--stores", type=_positive_int, default=500, help="stores (each one box)")
    bh.add_argument("--days", type=_positive_int, default=1, help="days of buckets ingested")
    bh.add_argument("--history-days", type=_positive_int, default=365,
                    help="days loaded before them for the pages")  # fmt: skip
    bh.add_argument("--workers", type=_positive_int, default=4, help="stores sending at once")
    bh.add_argument("--repeat", type=_positive_int, default=3, help="timed requests per page")
    bh.add_argument("--backend", action="append", choices=["postgresql", "sqlite"],
                    help="repeat for both (default: postgresql, then sqlite)")  # fmt: skip
    bh.add_argument("--json", action="store_true", help="one JSON object")
    bh.set_defaults(func=cmd_bench_hub)

    ing = sub.add_parser("ingest", help="import trajectories from any tracker (CSV)")
    ing.add_argument("--config", type=_config_arg, required=True)
    ing.add_argument("--csv", required=True, help="columns camera_id,track_id,t_ms,x_m,y_m")
    ing.add_argument("--db", help="SQLite file (default: storage.db_path)")
    ing.set_defaults(func=cmd_ingest)

    an = sub.add_parser("analyze", help="recompute aggregates for a time range")
    an.add_argument("--config", type=_config_arg, required=True)
    an.add_argument("--from", dest="from_utc", type=_parse_utc, required=True)
    an.add_argument("--to", dest="to_utc", type=_parse_utc, required=True)
    an.add_argument("--db", help="SQLite file (default: storage.db_path)")
    an.set_defaults(func=cmd_analyze)

    sim = sub.add_parser("simulate", help="a simulated store with exact ground truth")
    sim.add_argument("--scenario", required=True, help="scenario YAML (examples/sim/*/)")
    sim.add_argument("--out", required=True, help="folder for observations.csv and truth.json")
    sim.add_argument("--seed", type=int)
    sim.set_defaults(func=cmd_simulate)

    rp = sub.add_parser("replay", help="feed a simulated store into a database in real time")
    rp.add_argument("--scenario", required=True, help="scenario YAML (examples/sim/*/)")
    rp.add_argument("--db", required=True, help="SQLite file to write")
    rp.add_argument("--seed", type=int)
    rp.add_argument("--minutes", type=float, help="minutes of arrivals (default: scenario's)")
    rp.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    rp.add_argument(
        "--start-s",
        type=float,
        default=0.0,
        help="simulated second that maps to now (earlier: written at once as the recent past)",
    )
    rp.add_argument(
        "--write-timeout-s",
        type=float,
        default=30.0,
        help="give up (exit 1) when the database refuses writes this long (e.g. disk full)",
    )
    rp.set_defaults(func=cmd_replay)

    acc = sub.add_parser("accuracy", help="engine errors against simulated ground truth")
    acc.add_argument("--layouts", nargs="+", default=["corner_shop", "fashion", "supermarket"])
    acc.add_argument("--seeds", type=int, default=5, help="seeds 1..N per layout and mode")
    acc.add_argument(
        "--duration", type=float, help="simulated seconds of arrivals (default: scenario's)"
    )
    acc.add_argument("--json", action="store_true", help="every metric's error per run")
    acc.add_argument("--readme", help="rewrite the table between the accuracy markers of this file")
    acc.set_defaults(func=cmd_accuracy)

    ex = sub.add_parser("export", help="write an aggregate table as CSV or Parquet")
    ex.add_argument("--config", type=_config_arg, required=True)
    ex.add_argument("--table", required=True, help="agg_footfall, agg_dwell, agg_queue, …")
    ex.add_argument("--from", dest="from_utc", type=_parse_utc, required=True)
    ex.add_argument("--to", dest="to_utc", type=_parse_utc, required=True)
    ex.add_argument("--period", choices=["hour", "day", "week", "month"], help="roll up")
    ex.add_argument("--k", type=int, default=0, help="suppress rows describing < k people")
    ex.add_argument("--format", choices=["csv", "parquet"], default="csv")
    ex.add_argument("--out", required=True)
    ex.add_argument("--db", help="SQLite file (default: storage.db_path)")
    ex.set_defaults(func=cmd_export)

    ev = sub.add_parser("eval-mot", help="MOTA, IDF1, HOTA against MOTChallenge ground truth")
    ev.add_argument("--gt", required=True, help="ground truth (MOTChallenge gt.txt)")
    group = ev.add_mutually_exclusive_group(required=True)
    group.add_argument("--video", help="run our tracker on this video and evaluate it")
    group.add_argument("--result", help="evaluate an existing MOTChallenge result file")
    ev.add_argument("--config", type=_config_arg, help="default: the demo store (examples/)")
    ev.add_argument("--iou", type=float, default=0.5, help="match IoU threshold")
    ev.add_argument("--max-frames", type=int, help="with --video: stop after this many frames")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval_mot)

    add_db_parser(sub)
    add_web_parser(sub)
    add_privacy_parser(sub)
    add_alerts_parser(sub)
    add_doctor_parser(sub)
    add_firstboot_parser(sub)
    add_hub_parser(sub)
    add_release_parser(sub)
    add_sync_parser(sub)
    add_update_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``footfall`` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO, args.log_format)
    try:
        return int(args.func(args))
    except ModuleNotFoundError as exc:
        # the dev commands (demo, bench, accuracy, simulate, replay, eval-mot) import the lab
        # lazily; a box install has none (the box itself never imports it: `make lint`)
        if exc.name != "lab":
            raise
        logger.debug("%s needs the lab: %s", args.command, exc)
        print(LAB_MISSING, file=sys.stderr)
        return EXIT_BAD_INPUT
