"""systemd's notify protocol (``sd_notify``) over ``$NOTIFY_SOCKET``, without a dependency.

``Type=notify`` units tell systemd ``READY=1`` once started, ``STOPPING=1``
when shutting down, a ``STATUS=`` line for ``systemctl status``, and
``WATCHDOG=1`` at least every ``WatchdogSec`` (systemd passes it as
``$WATCHDOG_USEC``), or systemd kills and restarts the service. The socket is
a Unix datagram socket; a path starting with ``@`` is in the abstract
namespace. Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

logger = logging.getLogger(__name__)


def _status(text: str) -> str:
    """A ``STATUS=`` field on one line (a newline would start another field)."""
    return "STATUS=" + " ".join(text.splitlines())


class Notifier:
    """Sends notify messages to systemd.

    Args:
        env: the environment to read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and
            ``WATCHDOG_PID`` from (default ``os.environ``).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if path.startswith("@"):
            self.address = b"\0" + path[1:].encode()
        elif path.startswith("/"):
            self.address = path
        elif path:
            logger.warning("NOTIFY_SOCKET=%r is neither a path nor @abstract: ignored", path)
        self.watchdog_interval_s = self._watchdog_interval(env)

    @staticmethod
    def _watchdog_interval(env: Mapping[str, str]) -> float | None:
        """Half of ``WatchdogSec`` (systemd's advice), if the watchdog is meant for this process."""
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) == 0:
            return None
        if pid and pid != str(os.getpid()):
            return None
        return int(usec) / 2e6

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram.

        Returns:
            True if systemd got it; False without a socket or when sending
            failed (logged: the box keeps running).
        """
        if self.address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            logger.warning("sd_notify %s to %r failed: %s", fields, self.address, exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """Tell systemd the box has started (``READY=1``)."""
        return self.send("READY=1", *((_status(status),) if status else ()))

    def watchdog(self) -> bool:
        """Reset the watchdog timer (``WATCHDOG=1``)."""
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """Set the line ``systemctl status`` shows (``STATUS=…``, one line)."""
        return self.send(_status(text))

    def stopping(self) -> bool:
        """Tell systemd the box is shutting down (``STOPPING=1``)."""
        return self.send("STOPPING=1")
