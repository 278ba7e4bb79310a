"""``--log-format json``: one JSON object per line, with the exception when there is one."""

from __future__ import annotations

import io
import json
import logging

from appliance.box.logs import JsonFormatter


def test_one_json_object_per_record() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("footfall.test_logs")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("camera %s: %d frames\nlost", "entrée", 3)
        try:
            raise OSError("disk full")
        except OSError:
            log.exception("write failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert {k: first[k] for k in ("level", "logger", "msg")} == {
        "level": "WARNING", "logger": "footfall.test_logs", "msg": "camera entrée: 3 frames\nlost",
    }  # fmt: skip
    assert first["ts"].endswith("Z") and len(first["ts"]) == len("2026-11-25T10:00:00.000Z")
    assert second["msg"] == "write failed" and second["level"] == "ERROR"
    assert second["exc"].startswith("Traceback") and "OSError: disk full" in second["exc"]
