"""The child process of the privacy test: the real pipeline over the real video, watched.

Run as ``python -m tests.privacy_child DB FRAMES [PLANT]`` with its own HOME, TMPDIR and
working directory (the parent sets them). An audit hook records every file this process
opens for writing, anywhere; the report goes to stdout as one JSON object. ``PLANT`` makes
the run misbehave on purpose (``tmp-jpeg``: cv2 writes a frame into TMPDIR from C;
``python-open``: Python writes a frame's bytes to the path in ``FOOTFALL_PLANT_PATH``), so
the parent can prove that its checks catch a frame written to disk.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
START_UTC_MS = 1_764_064_800_000  # 2025-11-25T10:00:00Z

opened_for_writing: list[str] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event != "open" or not isinstance(args[0], str | bytes | os.PathLike):
        return
    mode = args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else 0
    writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and flags & WRITE_FLAGS
    )
    if writes:
        opened_for_writing.append(os.fsdecode(args[0]))


def main(argv: list[str]) -> int:
    """Run ``FRAMES`` frames of vtest.avi through the shipped config into ``DB``."""
    # The stdlib's one-off probe that TMPDIR is writable (a random file, removed at once)
    # happens before we watch; after it, every open counts, the box's imports included.
    tempfile.gettempdir()
    sys.addaudithook(_audit)
    import cv2

    from appliance.box.cameras import build_detector, process_file
    from appliance.config import load_config
    from vision.assets import demo_video
    from vision.sources import Frame
    from vision.types import Tracks

    db, frames = Path(argv[0]), int(argv[1])
    plant = argv[2] if len(argv) > 2 else None
    repo = Path(__file__).resolve().parent.parent
    config = load_config(repo / "examples" / "vtest.yaml")
    video = str(demo_video())
    detector = build_detector(config, video)
    stop = threading.Event()

    def on_frame(frame: Frame, _tracks: Tracks) -> None:
        if frame.index == 5 and plant == "tmp-jpeg":
            cv2.imwrite(str(Path(tempfile.gettempdir()) / "frame.jpg"), frame.image)
        if frame.index == 5 and plant == "python-open":
            with open(os.environ["FOOTFALL_PLANT_PATH"], "wb") as out:
                out.write(frame.image.tobytes())
        if frame.index >= frames:
            stop.set()

    stats = process_file(
        config, config.cameras[0], detector, video, db, START_UTC_MS, on_frame=on_frame, stop=stop
    )
    json.dump({"opened_for_writing": opened_for_writing, "frames": stats.frames}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
