"""Floor-plan uploads: a decoded-pixel budget read from the header, one decode at a time, and
only the pixels stored (no EXIF, no GPS, nothing appended).

The hostile images are real: a PNG here decodes to what its header says, were it decoded.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.config import load_config
from tests.webui_support import REPO, csrf_token
from vision.snapshots import (
    MAX_PLAN_DECODE_BYTES,
    MAX_PLAN_PIXELS,
    ImageError,
    check_plan_image,
    decode_slot,
)

PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type → samples per pixel in the file


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def zero_png(width: int, height: int, depth: int = 8, colour: int = 2, extra: bytes = b"") -> bytes:
    """A valid all-black PNG of any size, built without holding its pixels.

    Every scan line is a zero filter byte and zero samples, so the zlib stream is one
    deflate block of zeros repeated (a full flush makes each copy identical), closed by
    the Adler-32 of n zero bytes: ``(n mod 65521) << 16 | 1``.
    """
    row = 1 + width * PNG_CHANNELS[colour] * depth // 8
    rows_per_block = max(1, (4 << 20) // row)
    blocks, rest = divmod(height, rows_per_block)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(bytes(row * rows_per_block)) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.compress(bytes(row * rest)) + deflate.flush(zlib.Z_FINISH)
    total = row * height
    stream = b"\x78\xda" + block * blocks + tail + struct.pack(">I", (total % 65521) << 16 | 1)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + extra
        + _chunk(b"IDAT", stream)
        + _chunk(b"IEND", b"")
    )


def jpeg_bytes(width: int = 60, height: int = 40, *, progressive: bool = False) -> bytes:
    """A JPEG whose left half is white."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (255, 255, 255)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    assert ok
    return bytes(buf)


def declare_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header claiming ``width`` x ``height``."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = jpeg.find(marker)
        if at > 0:
            return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]
    raise AssertionError("no frame header")


def exif_segment(orientation: int) -> bytes:
    """An APP1 Exif segment: IFD0 with Orientation and a GPS IFD at 51°30'N."""
    entry = struct.Struct(">HHI4s")
    gps_at = 8 + 2 + 2 * 12 + 4
    ifd0 = struct.pack(">H", 2)
    ifd0 += entry.pack(0x0112, 3, 1, struct.pack(">HH", orientation, 0))
    ifd0 += entry.pack(0x8825, 4, 1, struct.pack(">I", gps_at)) + struct.pack(">I", 0)
    latitude_at = gps_at + 2 + 2 * 12 + 4
    gps = struct.pack(">H", 2)
    gps += entry.pack(0x0001, 2, 2, b"N\x00\x00\x00")
    gps += entry.pack(0x0002, 5, 3, struct.pack(">I", latitude_at)) + struct.pack(">I", 0)
    latitude = struct.pack(">6I", 51, 1, 30, 1, 0, 1)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd0 + gps + latitude
    body = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def appended_zip() -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.txt", "not a floor plan")
    return out.getvalue()


HOSTILE = {
    # the issue's: 0.8 MB, passes the per-side check, 800 MB decoded
    "png-10000x10000-rgba16": (zero_png(10_000, 10_000, 16, 6), "100.0 Mpx"),
    # under the pixel budget, over the byte budget: 17.6 Mpx x 8 bytes
    "png-4200x4200-rgba16": (zero_png(4200, 4200, 16, 6), "MB to decode"),
    "jpeg-declares-9000x9000": (declare_jpeg_size(jpeg_bytes(), 9000, 9000), "81.0 Mpx"),
    # 20 Mpx, 61 MB of pixels, plus the progressive decoder's whole-image coefficients
    "progressive-jpeg-4500x4500": (
        declare_jpeg_size(jpeg_bytes(progressive=True), 4500, 4500),
        "MB to decode",
    ),
}


def test_the_hostile_pngs_are_real_images() -> None:
    small = zero_png(300, 200, 16, 6)
    image = cv2.imdecode(np.frombuffer(small, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.shape == (200, 300, 4) and image.dtype == np.uint16
    assert len(HOSTILE["png-10000x10000-rgba16"][0]) < 1 << 20  # under 1 MB on the wire


@pytest.mark.parametrize("name", HOSTILE)
def test_over_budget_images_are_refused_naming_the_budget(name: str) -> None:
    data, reason = HOSTILE[name]
    with pytest.raises(ImageError, match=reason) as refused:
        check_plan_image(data)
    assert f"{MAX_PLAN_PIXELS / 1e6:g} Mpx" in str(refused.value) or (
        f"{MAX_PLAN_DECODE_BYTES >> 20} MB" in str(refused.value)
    )


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"\xff\xd8\xff\xda\x00\x08" + bytes(40), "no readable size"),  # scan before a frame
        (b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(20), "no readable size"),  # cut short
        (zero_png(10, 10)[:20], "no readable size"),
        (zero_png(0, 10), "no pixels"),
        (zero_png(10, 10).replace(b"\x08\x02\x00", b"\x08\x09\x00", 1), "invalid header"),
        (declare_jpeg_size(jpeg_bytes(), 60, 0), "no readable size"),  # height from a DNL
    ],
)
def test_unreadable_headers_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        check_plan_image(data)


_MEASURE = """
import json, resource, sys
from pathlib import Path
from vision.snapshots import ImageError, check_plan_image
files = [Path(p).read_bytes() for p in sys.argv[1:]]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
errors = []
for data in files:
    try:
        check_plan_image(data)
        errors.append(None)
    except ImageError as exc:
        errors.append(str(exc))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"grown_kb": grown, "errors": errors}))
"""


def test_refusals_happen_before_decoding_in_a_child_process(tmp_path: Path) -> None:
    paths = []
    for name, (data, _reason) in HOSTILE.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(str(path))
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *paths],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    result = json.loads(out.stdout)
    assert all(result["errors"]), result["errors"]
    assert result["grown_kb"] < 16 << 10, f"peak RSS grew {result['grown_kb']} kB: it decoded"


def upload(client: FlaskClient, data: bytes, name: str) -> tuple[int, str, dict[str, str]]:
    token = csrf_token(client, "/installer/")
    files = {"image": (io.BytesIO(data), name), "csrf_token": token}
    response = client.post("/installer/plan/image", data=files)
    return response.status_code, response.get_data(as_text=True), dict(response.headers)


def config_dir(app: Flask) -> Path:
    path: Path = app.extensions["footfall"].config_path
    return path.parent


def config_files(app: Flask) -> list[Path]:
    """The config folder's files but the database (sign-in writes sessions to it)."""
    return sorted(p for p in config_dir(app).iterdir() if not p.name.startswith("box.db"))


def test_an_over_budget_upload_is_a_400_and_nothing_is_stored(
    app: Flask, installer: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    before = config_files(app)
    data, _reason = HOSTILE["png-10000x10000-rgba16"]
    status, page, _ = upload(installer, data, "bomb.png")
    assert status == 400
    assert "bomb.png: the image is 10000x10000 (100.0 Mpx); at most 25 Mpx" in page
    assert config_files(app) == before
    assert not [r for r in caplog.records if r.exc_info]


def test_a_second_decode_at_once_is_a_503_with_the_reason(
    app: Flask, installer: FlaskClient
) -> None:
    drawing = zero_png(600, 300)
    with decode_slot():  # another upload is being decoded
        status, page, headers = upload(installer, drawing, "plan.png")
    assert status == 503 and headers["Retry-After"].isdigit()
    assert "another plan image is being decoded" in page
    assert load_config(app.extensions["footfall"].config_path).floor_plan.image is None
    status, _, _ = upload(installer, drawing, "plan.png")  # the slot is free again
    assert status == 302


def test_a_refused_image_frees_the_decode_slot() -> None:
    with pytest.raises(ImageError, match="damaged"):
        check_plan_image(zero_png(600, 300)[:200])
    with decode_slot():
        pass


def test_only_pixels_are_stored_no_exif_gps_or_appended_zip(
    app: Flask, installer: FlaskClient
) -> None:
    original = jpeg_bytes(60, 40)
    tagged = original[:2] + exif_segment(orientation=6) + original[2:] + appended_zip()
    assert b"Exif" in tagged and b"PK\x03\x04" in tagged
    status, page, _ = upload(installer, tagged, "photo.jpg")
    assert status == 302, page
    plan = load_config(app.extensions["footfall"].config_path).floor_plan
    stored = (config_dir(app) / str(plan.image)).read_bytes()
    assert stored.startswith(b"\xff\xd8\xff") and stored.endswith(b"\xff\xd9")
    for trace in (b"Exif", b"PK\x03\x04", b"payload.txt", b"\xff\xe1"):
        assert trace not in stored
    image = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    # orientation 6 (rotate 90° clockwise) is applied to the pixels, since the tag is gone
    assert image.shape == (60, 40, 3)
    assert image[5, 20].min() > 200 and image[55, 20].max() < 50  # the white half is on top
    assert plan.depth_m == round(plan.width_m * 60 / 40, 3)


def test_a_png_keeps_its_pixels_and_alpha_and_loses_its_text_and_tail(
    app: Flask, installer: FlaskClient
) -> None:
    image = np.zeros((30, 50, 4), np.uint16)
    image[:, :25] = (65535, 1000, 0, 40000)
    ok, buf = cv2.imencode(".png", image)
    assert ok
    png = bytes(buf)
    text = _chunk(b"tEXt", b"Comment\x00secret")
    tagged = png[:33] + text + png[33:] + appended_zip()
    status, page, _ = upload(installer, tagged, "plan.png")
    assert status == 302, page
    plan = load_config(app.extensions["footfall"].config_path).floor_plan
    stored = (config_dir(app) / str(plan.image)).read_bytes()
    assert b"tEXt" not in stored and b"secret" not in stored and b"PK\x03\x04" not in stored
    assert stored.endswith(_chunk(b"IEND", b""))
    decoded = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None and decoded.dtype == np.uint16 and np.array_equal(decoded, image)
