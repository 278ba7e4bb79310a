"""Cameras the setup wizard offers: USB (V4L2 capture nodes) and ONVIF cameras on the LAN.

Nothing here opens a camera or reads a frame. USB cameras are the V4L2 nodes the kernel
lists in sysfs (one per camera: the capture node, index 0); LAN cameras answer an ONVIF
WS-Discovery probe (one UDP datagram to 239.255.255.250:3702) with their device service
address, whose host the wizard proposes as ``rtsp://HOST:554/`` for the installer to
complete (the stream path and the camera's account are the camera's own).
"""

from __future__ import annotations

import logging
import re
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

WS_DISCOVERY = ("239.255.255.250", 3702)
_MAX_DATAGRAM = 65_535
_MAX_CAMERAS = 64
_VIDEO_NODE = re.compile(r"^video(\d+)$")
_HOST = re.compile(r"^[a-z0-9.-]{1,253}$|^[0-9a-f:]{2,39}$")  # a name, IPv4 or IPv6
_PROBE = """<?xml version="1.0" encoding="UTF-8"?>
<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"
 xmlns:w="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<e:Header><w:MessageID>uuid:{id}</w:MessageID>
<w:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>
<w:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</w:Action></e:Header>
<e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body>
</e:Envelope>"""


@dataclass(frozen=True)
class FoundCamera:
    """A camera the wizard can offer.

    Attributes:
        source: the config's ``source`` for it (``usb:N`` or ``rtsp://HOST:554/``).
        label: what the installer sees (the USB device's name, the ONVIF address).
    """

    source: str
    label: str


def usb_cameras(sysfs: Path = Path("/sys/class/video4linux")) -> list[FoundCamera]:
    """The USB cameras' capture nodes (``usb:N`` opens ``/dev/videoN``), by number."""
    found: list[tuple[int, FoundCamera]] = []
    try:
        nodes = list(sysfs.iterdir())
    except OSError:
        return []
    for node in nodes:
        match = _VIDEO_NODE.match(node.name)
        if match is None:
            continue
        # a UVC camera has a metadata node too (index 1); only index 0 captures
        if _read(node / "index", "0") != "0":
            continue
        number = int(match.group(1))
        name = _read(node / "name", node.name)
        found.append((number, FoundCamera(f"usb:{number}", f"USB: {name} (/dev/video{number})")))
    return [camera for _, camera in sorted(found)]


def _read(path: Path, default: str) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()[:100] or default
    except OSError:
        return default


def _xaddrs(datagram: bytes) -> list[str]:
    """The device service addresses in one WS-Discovery ProbeMatch (none if malformed)."""
    try:
        root = ET.fromstring(datagram)
    except ET.ParseError:
        return []
    addresses: list[str] = []
    for element in root.iter():
        if element.tag.rpartition("}")[2] == "XAddrs" and element.text:
            addresses += element.text.split()
    return addresses


def _host(address: str) -> str | None:
    """The host of a device service address, bracketed if IPv6; None if it is not one."""
    try:
        host = urlsplit(address).hostname
    except ValueError:
        return None
    if host is None or not _HOST.match(host):
        return None
    return f"[{host}]" if ":" in host else host


def onvif_cameras(
    timeout_s: float = 1.5, target: tuple[str, int] = WS_DISCOVERY
) -> list[FoundCamera]:
    """ONVIF cameras answering a WS-Discovery probe within ``timeout_s``, by host.

    Args:
        timeout_s: how long to collect answers.
        target: where the probe goes (the WS-Discovery multicast group by default).

    Returns:
        One camera per host that answered; none when the LAN cannot be reached.
    """
    probe = _PROBE.format(id=uuid.uuid4()).encode()
    hosts: dict[str, FoundCamera] = {}
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError as exc:
        logger.warning("camera discovery: no UDP socket: %s", exc)
        return []
    with sock:
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.sendto(probe, target)
        except OSError as exc:
            logger.warning("camera discovery: probe to %s:%d not sent: %s", *target, exc)
            return []
        deadline = time.monotonic() + timeout_s
        while len(hosts) < _MAX_CAMERAS and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                datagram, sender = sock.recvfrom(_MAX_DATAGRAM)
            except TimeoutError:
                break
            except OSError as exc:
                logger.warning("camera discovery: %s", exc)
                break
            for address in _xaddrs(datagram):
                host = _host(address)
                if host is not None and host not in hosts:
                    hosts[host] = FoundCamera(f"rtsp://{host}:554/", f"ONVIF: {address[:200]}")
            if not hosts:
                logger.info("camera discovery: an answer from %s named no camera", sender[0])
    return [hosts[host] for host in sorted(hosts)]
