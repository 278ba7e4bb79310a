"""Store configs the tests share: a 10 m x 8 m shop seen whole by one or two cameras."""

from __future__ import annotations

_HEAD = """
config_version: 1
store: {id: shop, name: Test shop, timezone: Europe/London}
floor_plan: {width_m: 10, depth_m: 8}
cameras:
  - id: cam-a
    source: sim:test
    fps: 10
    resolution: [800, 600]
    calibration: &whole-floor
      - {image: [0, 0], floor: [0, 0]}
      - {image: [800, 0], floor: [10, 0]}
      - {image: [800, 600], floor: [10, 8]}
      - {image: [0, 600], floor: [0, 8]}
"""
_CAM_B = """  - id: cam-b
    source: sim:test
    fps: 10
    resolution: [800, 600]
    calibration: *whole-floor
"""
_DOOR = """lines:
  - {id: door, a: [4, 7], b: [6, 7], in_side: right}  # the shop is at y < 7
"""
_ZONES = """zones:
  - {id: display, kind: display, polygon: [[1, 1], [4, 1], [4, 4], [1, 4]]}
  - {id: queue, kind: queue, polygon: [[6, 2], [9, 2], [9, 5], [6, 5]]}
  - {id: till, kind: service_point, polygon: [[6, 0], [9, 0], [9, 2], [6, 2]]}
  - {id: office, kind: staff_only, polygon: [[0, 5], [2, 5], [2, 8], [0, 8]]}
"""

#: two overlapping cameras, a door line, a display, a queue at a till and a staff office
SHOP = _HEAD + _CAM_B + _DOOR + _ZONES
#: one camera and the door line only
ONE_CAMERA_SHOP = _HEAD + _DOOR
