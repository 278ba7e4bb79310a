"""The setup wizard's camera discovery: USB capture nodes in sysfs, ONVIF answers on UDP."""

from __future__ import annotations

from pathlib import Path

from tests.onvif_support import onvif_camera, probe_match
from vision.discovery import FoundCamera, onvif_cameras, usb_cameras


def _node(sysfs: Path, name: str, index: str, label: str) -> None:
    (sysfs / name).mkdir(parents=True)
    (sysfs / name / "index").write_text(index + "\n")
    (sysfs / name / "name").write_text(label + "\n")


def test_usb_cameras_are_the_capture_nodes_in_number_order(tmp_path: Path) -> None:
    _node(tmp_path, "video10", "0", "Logitech C920")
    _node(tmp_path, "video11", "1", "Logitech C920")  # its metadata node
    _node(tmp_path, "video2", "0", "UVC Camera")
    (tmp_path / "v4l-subdev0").mkdir()
    assert usb_cameras(tmp_path) == [
        FoundCamera("usb:2", "USB: UVC Camera (/dev/video2)"),
        FoundCamera("usb:10", "USB: Logitech C920 (/dev/video10)"),
    ]
    assert usb_cameras(tmp_path / "absent") == []


def test_onvif_answers_become_rtsp_sources_one_per_host_and_junk_is_ignored() -> None:
    answers = (
        b"<not xml",
        probe_match("http://192.168.1.20/onvif/device_service", "http://[fe80::1]/onvif"),
        probe_match("http://192.168.1.20:8080/onvif/device_service"),  # the same camera again
        probe_match("http://bad_host!/onvif", "javascript:alert(1)", "http://%0a/x"),
    )
    with onvif_camera(*answers) as address:
        found = onvif_cameras(0.5, address)
    assert found == [
        FoundCamera("rtsp://192.168.1.20:554/", "ONVIF: http://192.168.1.20/onvif/device_service"),
        FoundCamera("rtsp://[fe80::1]:554/", "ONVIF: http://[fe80::1]/onvif"),
    ]


def test_no_answer_is_no_camera() -> None:
    with onvif_camera() as address:
        assert onvif_cameras(0.2, address) == []
