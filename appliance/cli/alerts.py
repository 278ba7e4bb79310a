"""``footfall alerts check`` and ``footfall alerts bench``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from appliance.alerts.engine import AlertSetupError, load_setup
from appliance.alerts.roster import RosterError
from appliance.config import ConfigError

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def report_setup_error(exc: ConfigError | RosterError | AlertSetupError) -> int:
    """Print a bad config, roster or webhook secret (one line per problem); returns exit 2."""
    for line in exc.issues if isinstance(exc, ConfigError) else [exc]:
        print(line, file=sys.stderr)
    return EXIT_BAD_INPUT


def cmd_alerts_check(args: argparse.Namespace) -> int:
    """Validate the alert rules, the roster and the webhook secrets of a config."""
    config_path = Path(args.config)
    try:
        setup = load_setup(config_path, Path(args.roster) if args.roster else None)
    except (ConfigError, RosterError, AlertSetupError) as exc:
        return report_setup_error(exc)
    print(f"{config_path}: {len(setup.config.alerts)} alert rule(s) OK")
    if setup.roster is not None:
        print(f"roster {setup.roster.source}: {len(setup.roster.shifts)} shift(s)")
    return EXIT_OK


def cmd_alerts_bench(args: argparse.Namespace) -> int:
    """Live snapshot and alert tick cost on a busy store, and points → alert latency."""
    from lab.bench.alerts import bench_alerts

    result: dict[str, Any] = bench_alerts(args.people, args.minutes, args.ticks)
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    print(
        f"footfall bench alerts — {result['cameras']} cameras, {result['people']} people, "
        f"{result['history_points']:,} points of history, {result['cores']} cores"
    )
    for key, label in (
        ("cold_snapshot_ms", "first snapshot (reads the lookback)"),
        ("snapshot_ms_mean", "snapshot per second, mean"),
        ("snapshot_ms_p95", "snapshot per second, p95"),
        ("tick_ms_mean", "alert tick (snapshot + rules + log), mean"),
        ("latency_ms", "points committed → alert_log row"),
    ):
        print(f"  {label:<44} {result[key]:>8.1f} ms")
    return EXIT_OK


def add_alerts_parser(sub: Any) -> None:
    """Register ``footfall alerts ...`` on the CLI's subparsers."""
    alerts = sub.add_parser("alerts", help="alert rules: validate, benchmark")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    check = alerts_sub.add_parser("check", help="validate alert rules, roster, webhook secrets")
    check.add_argument("--config", required=True, help="the store YAML")
    check.add_argument("--roster", help="roster CSV (default: the config's alerting.roster)")
    check.set_defaults(func=cmd_alerts_check)
    bench = alerts_sub.add_parser("bench", help="live state and alert cost on a busy store")
    bench.add_argument("--people", type=int, default=200)
    bench.add_argument("--minutes", type=float, default=10, help="history written first")
    bench.add_argument("--ticks", type=int, default=30, help="seconds measured")
    bench.add_argument("--json", action="store_true", help="one JSON object")
    bench.set_defaults(func=cmd_alerts_bench)
