"""The box's updater: signed releases from the hub (TUF), installed beside the running one.

``fetch.py`` (the TUF client: verify and download a release), ``journal.py`` (the state
file that makes every step survive a SIGKILL), ``gate.py`` (the health gate: ``/healthz``
ok and frames flowing), ``install.py`` (install into ``<releases>/<version>/``, switch
``current`` by a rename, gate, roll back; :func:`recover` after a crash), ``report.py``
(the signed outcome report to the hub).
"""

from appliance.update.fetch import FetchedRelease, UpdateRefusedError, fetch_release
from appliance.update.install import Outcome, Settings, apply_release, recover
from appliance.update.journal import Journal, read_journal

__all__ = [
    "FetchedRelease",
    "Journal",
    "Outcome",
    "Settings",
    "UpdateRefusedError",
    "apply_release",
    "fetch_release",
    "read_journal",
    "recover",
]
