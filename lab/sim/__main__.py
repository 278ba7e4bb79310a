"""Command line: ``python -m lab.sim SCENARIO.yaml --out DIR``.

Writes ``DIR/observations.csv`` (the ``footfall ingest`` format) and
``DIR/truth.json``, and prints one summary line. Exit codes: 0 ok, 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lab.sim.geometry import GeometryError
from lab.sim.layout import LayoutError
from lab.sim.run import simulate_file
from lab.sim.scenario import ScenarioError


def main(argv: list[str] | None = None) -> int:
    """Run one scenario file and write its observations and truth.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    parser = argparse.ArgumentParser(prog="python -m lab.sim", description=__doc__)
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--out", type=Path, default=Path("."), help="output folder")
    parser.add_argument("--seed", type=int, default=None, help="default: the scenario's seed")
    parser.add_argument(
        "--trajectories", action="store_true", help="include every trajectory sample in truth.json"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        result = simulate_file(args.scenario, args.seed)
    except (ScenarioError, LayoutError, GeometryError, ValueError) as exc:
        print(f"{args.scenario}: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    result.write_csv(args.out / "observations.csv")
    (args.out / "truth.json").write_text(
        result.truth_json(include_trajectories=args.trajectories), encoding="utf-8"
    )
    crossings = result.line_crossings
    print(
        f"{result.scenario} seed {result.seed}: {result.stats.simulated_s:.0f} s simulated in "
        f"{result.stats.wall_s:.1f} s, {result.stats.customers} customers, "
        f"{int((crossings['direction'] == 'in').sum())} in / "
        f"{int((crossings['direction'] == 'out').sum())} out, "
        f"{len(result.observations)} observations -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
