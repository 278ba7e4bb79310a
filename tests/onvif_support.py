"""A real ONVIF camera's WS-Discovery answer, from a UDP socket on a free local port."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

PROBE_MATCH = """<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery">
<s:Body><d:ProbeMatches><d:ProbeMatch>
<d:Types>dn:NetworkVideoTransmitter</d:Types>
<d:XAddrs>{xaddrs}</d:XAddrs>
</d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"""


@contextmanager
def onvif_camera(*answers: bytes) -> Iterator[tuple[str, int]]:
    """Answer each WS-Discovery probe with ``answers`` (datagrams); yields the address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                probe, sender = sock.recvfrom(65_535)
            except TimeoutError:
                continue
            if b"discovery/Probe" in probe:
                for answer in answers:
                    sock.sendto(answer, sender)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()
    finally:
        stop.set()
        thread.join()
        sock.close()


def probe_match(*xaddrs: str) -> bytes:
    """A ProbeMatch naming these device service addresses."""
    return PROBE_MATCH.format(xaddrs=" ".join(xaddrs)).encode()
