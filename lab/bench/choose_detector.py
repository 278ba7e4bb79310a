"""Reproduce the README's "Choosing" table: detector variants on vtest.avi.

Usage: .venv/bin/python -m lab.bench.choose_detector [VIDEO]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from appliance.config import BoxConfig, load_config
from lab import DEMO_STORE
from lab.bench.vision import run_ours
from vision.assets import demo_video

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("shipped: int8, Normal only, 480x640", {}),
    ("fp32 (same settings)", {"precision": "fp32"}),
    ("int8, Normal + Fall", {"person_classes": [0, 1]}),
    ("int8, 640x640 (the export's own size)", {"input_size": (640, 640)}),
    ("int8, 384x512", {"input_size": (384, 512)}),
    ("int8, conf 0.25 (ultralytics' default)", {"conf": 0.25}),
]


def variant(config: BoxConfig, update: dict[str, Any]) -> BoxConfig:
    """The config with its detector settings updated (and re-validated)."""
    data = config.model_dump()
    data["detector"].update(update)
    return BoxConfig.model_validate(data)


def main() -> None:
    """Print one markdown row per variant."""
    video = Path(sys.argv[1]) if len(sys.argv) > 1 else demo_video()
    base = load_config(DEMO_STORE)
    print("| detector variant | fps | persons/frame | unique tracks | MAE vs hand counts |")
    print("|---|---|---|---|---|")
    for name, update in VARIANTS:
        r = run_ours(variant(base, update), video)
        mae = r.hand_count_mae()
        print(
            f"| {name} | {r.fps:.1f} | {r.persons_per_frame:.2f} | {r.unique_tracks} | "
            f"{'n/a' if mae is None else f'{mae:.2f}'} |"
        )


if __name__ == "__main__":
    main()
