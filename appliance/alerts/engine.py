"""The alert engine: every second, live snapshot → rules → alert log, webhooks, buzzer.

Start-up reads the config (and roster) and restores the alerts still active in
``alert_log``, so a restart never raises them twice. The config comes from a
:class:`appliance.config.live.LiveConfig` (``footfall run`` shares its own with every
part). :meth:`AlertEngine.reload` swaps in new rules only if the whole file (and
roster) is valid and its outputs start; otherwise the last good rules stay and the
errors (``FILE:LINE: ...``) are logged once, as a warning, and kept in ``errors``. No
reload failure of any kind stops the tick.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.alerts.gpio import SEVERITY_RANK, Buzzer, GpioBackend, open_gpio
from appliance.alerts.log import active_alerts, record
from appliance.alerts.measures import Inputs, SystemState, measure_system
from appliance.alerts.roster import Roster, RosterError, load_roster
from appliance.alerts.rules import AlertState, Transition, evaluate
from appliance.alerts.webhook import WebhookSender
from appliance.analytics.live import LiveCache, LiveSnapshot, snapshot
from appliance.config import AlertingConfig, BoxConfig, ConfigError, load_config
from appliance.config.live import LiveConfig
from local_db import connect, migrate
from local_db.alert_log import clear_rules

logger = logging.getLogger(__name__)

TICK_S = 1.0


class AlertSetupError(ValueError):
    """The rules' surroundings are unusable (a webhook secret is not set)."""


@dataclass(frozen=True)
class AlertSetup:
    """A validated config with its roster and webhook secrets."""

    config: BoxConfig
    roster: Roster | None
    secrets: tuple[bytes, ...]


def roster_path(config: BoxConfig, config_path: Path) -> Path | None:
    """The roster file of a config (relative paths are relative to the config's folder)."""
    if config.alerting.roster is None:
        return None
    return config_path.parent / Path(config.alerting.roster).expanduser()


def load_setup(config_path: Path, roster: Path | None = None) -> AlertSetup:
    """Read and validate everything the rules need.

    Args:
        config_path: the store YAML.
        roster: a roster CSV overriding ``alerting.roster``.

    Raises:
        ConfigError: the YAML is invalid.
        RosterError: the roster is invalid.
        AlertSetupError: a webhook's secret variable is not set.
    """
    return setup_for(load_config(config_path), config_path, roster)


def setup_for(config: BoxConfig, config_path: Path, roster: Path | None = None) -> AlertSetup:
    """Read the roster and the webhook secrets of a validated config.

    Args:
        config: the store config.
        config_path: its file (a relative ``alerting.roster`` is relative to its folder).
        roster: a roster CSV overriding ``alerting.roster``.

    Raises:
        RosterError: the roster is invalid.
        AlertSetupError: a webhook's secret variable is not set.
    """
    path = roster or roster_path(config, config_path)
    loaded = None
    if path is not None:
        loaded = load_roster(path, config)
    secrets = []
    for i, hook in enumerate(config.alerting.webhooks):
        secret = os.environ.get(hook.secret_env, "")
        if not secret:
            raise AlertSetupError(
                f"{config_path}: alerting.webhooks.{i}.secret_env: "
                f"${hook.secret_env} is not set (the HMAC key of {hook.url})"
            )
        secrets.append(secret.encode())
    return AlertSetup(config, loaded, tuple(secrets))


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def webhook_payload(store_id: str, alert_id: int, t: Transition) -> dict[str, Any]:
    """The JSON object a webhook receives for one alert raised or cleared (before its envelope).

    Args:
        store_id: the store.
        alert_id: the alert's row in ``alert_log``.
        t: the transition.
    """
    value = t.value if t.value is not None and math.isfinite(t.value) else None
    return {
        "event": f"alert.{'raised' if t.action == 'raise' else 'cleared'}",
        "store_id": store_id,
        "alert": {
            "id": alert_id,
            "rule_id": t.rule.id,
            "kind": t.rule.kind,
            "target": t.target,
            "severity": t.rule.severity,
            "t_ms": t.t_ms,
            "value": value,
            "message": t.message,
        },
    }


class AlertEngine:
    """Evaluates the rules every second and delivers what changes (a box service).

    Args:
        config_path: the store YAML, or the process's live config of it (re-read by
            :meth:`reload`).
        db_path: the SQLite file (the engine opens its own connection).
        gpio: the buzzer's line (default: from ``alerting.buzzer``).
        system: measures the box (default: free disk of the database's folder, no
            sync lag).
        on_tick: called after every tick with the live snapshot and the alerts raised
            and cleared (the runtime reports them to health and metrics).

    Raises:
        ConfigError, RosterError, AlertSetupError: the first load failed.
    """

    name = "alerts"

    def __init__(
        self,
        config_path: str | Path | LiveConfig,
        db_path: str | Path,
        *,
        gpio: GpioBackend | None = None,
        system: Callable[[], SystemState] | None = None,
        on_tick: Callable[[LiveSnapshot, list[Transition]], None] | None = None,
    ) -> None:
        if isinstance(config_path, LiveConfig):
            self.live = config_path
        else:
            self.live = LiveConfig(config_path)
        self.config_path = self.live.path
        self._on_tick = on_tick
        self.db_path = Path(db_path)
        self.errors: list[str] = []
        self._system = system or (lambda: measure_system(self.db_path))
        self._gpio = gpio
        self._now_ms: int | None = None  # the last tick's time
        self.setup = setup_for(self.live.current(), self.config_path)
        self._tried = self._files_state()
        self.conn = connect(self.db_path)
        migrate(self.conn)
        self.cache = LiveCache(self.setup.config)
        self.state = AlertState()
        self._webhooks: list[tuple[WebhookSender, int]] = []
        self._buzzer: Buzzer | None = None
        self._start_outputs(self.setup, self._open_buzzer(self.setup))
        self._restore()

    @property
    def config(self) -> BoxConfig:
        """The config in use (the last good one)."""
        return self.setup.config

    def _restore(self) -> None:
        rules = {r.id for r in self.config.alerts}
        stale = []
        for alert in active_alerts(self.conn, self.config.store.id):
            if alert.rule_id in rules:
                self.state.restore(alert.rule_id, alert.target, alert.raised_ms)
            else:
                stale.append(alert.rule_id)
        self._clear_rules(stale, "rule removed")

    def _open_buzzer(self, setup: AlertSetup) -> Buzzer | None:
        """The buzzer of a setup (opened before anything of the old setup is let go).

        Raises:
            RuntimeError: the GPIO line cannot be requested.
        """
        buzzer = setup.config.alerting.buzzer
        if buzzer is None:
            return None
        return Buzzer(self._gpio or open_gpio(buzzer), buzzer.min_severity)

    def _start_outputs(self, setup: AlertSetup, buzzer: Buzzer | None) -> None:
        alerting: AlertingConfig = setup.config.alerting
        for sender, _ in self._webhooks:
            sender.close(timeout_s=1.0)
        self._webhooks = [
            (
                WebhookSender(
                    hook.url,
                    secret,
                    timeout_s=hook.timeout_s,
                    max_attempts=hook.max_attempts,
                    retry_base_s=hook.retry_base_s,
                ),
                SEVERITY_RANK[hook.min_severity],
            )
            for hook, secret in zip(alerting.webhooks, setup.secrets, strict=True)
        ]
        if self._buzzer is not None and self._gpio is None:
            self._buzzer.close()
        self._buzzer = buzzer

    def reload(self) -> bool:
        """Re-read the config and roster; keep the last good rules if either is bad.

        A failure of any kind (an invalid file, a missing secret, a buzzer that cannot
        be opened, a bug) leaves the last good rules running; it is logged as one warning.
        With an invalid file, the last good rules are those of the live config's last
        good version.

        Returns:
            True if the new rules are in use; False (and ``errors`` says why) if not.
        """
        path = self.config_path
        try:
            self.live.reload()
            config = self.live.current()  # the file's newest good version
            if config is not self.config or not self.live.issues:
                setup = setup_for(config, path)
                self._swap(setup)
            if self.live.issues:  # the file's newest version is bad: say so
                raise ConfigError(self.live.issues)
        except ConfigError as exc:
            self.errors = [str(issue) for issue in exc.issues]
        except (RosterError, AlertSetupError) as exc:
            self.errors = [str(exc)]
        except Exception as exc:  # whatever it is, the last good rules keep running
            logger.debug("reloading %s failed", path, exc_info=True)
            self.errors = [f"{path}: cannot use the new config: {type(exc).__name__}: {exc}"]
        else:
            self.errors = []
            logger.info("alert rules reloaded from %s: %d rule(s)", path, len(setup.config.alerts))
            return True
        logger.warning(
            "alert rules not reloaded from %s, keeping the last good ones: %s",
            path,
            "; ".join(self.errors),
        )
        return False

    def _swap(self, setup: AlertSetup) -> None:
        """Put ``setup`` in use; if its outputs cannot start, nothing changes.

        Raises:
            RuntimeError: the new buzzer's GPIO line cannot be requested.
        """
        outputs = (
            setup.config.alerting != self.config.alerting or setup.secrets != self.setup.secrets
        )
        buzzer = self._open_buzzer(setup) if outputs else None
        old = {r.id: r for r in self.config.alerts}
        new = {r.id: r for r in setup.config.alerts}
        changed = [rid for rid, rule in old.items() if new.get(rid) != rule]
        if setup.config.store.id != self.config.store.id:
            changed = list(old)
        self._clear_rules(changed, "rule changed or removed")
        for rid in changed:
            self.state.drop(rid)
        if outputs:
            self._start_outputs(setup, buzzer)
        self.setup = setup

    def _clear_rules(self, rule_ids: list[str], why: str) -> None:
        """Clear the active alerts of rules that were removed or changed."""
        if not rule_ids:
            return
        now = self._now_ms if self._now_ms is not None else int(time.time() * 1000)
        rules = {r.id: r for r in self.config.alerts}
        unknown = [rid for rid in rule_ids if rid not in rules]  # removed while stopped
        clear_rules(self.conn, unknown, now, f" ({why})")
        self._deliver(
            [
                Transition("clear", rules[a.rule_id], a.target, now, None, f"{a.rule_id}: {why}")
                for a in active_alerts(self.conn, self.config.store.id)
                if a.rule_id in rule_ids and a.rule_id in rules
            ]
        )

    def tick(self, now_ms: int) -> list[Transition]:
        """One evaluation at ``now_ms``: snapshot, rules, log, webhooks, buzzer.

        Returns:
            The alerts raised and cleared.
        """
        config = self.config
        self._now_ms = now_ms
        snap = snapshot(self.conn, config, now_ms, config.alerting.window_s, cache=self.cache)
        inputs = Inputs(config, self._system(), self.setup.roster)
        transitions = evaluate(config.alerts, snap, self.state, now_ms, inputs=inputs)
        self._deliver(transitions)
        if self._on_tick is not None:
            self._on_tick(snap, transitions)
        return transitions

    def _deliver(self, transitions: list[Transition]) -> None:
        store = self.config.store.id
        if transitions:
            ids = record(self.conn, store, transitions)
            for alert_id, t in zip(ids, transitions, strict=True):
                for sender, min_rank in self._webhooks:
                    if SEVERITY_RANK[t.rule.severity] >= min_rank:
                        sender.send(webhook_payload(store, alert_id, t))
        if self._buzzer is not None:
            self._buzzer.update(active_alerts(self.conn, store))

    def reload_if_changed(self) -> bool | None:
        """Reload when the config or roster file changed since the last try.

        Returns:
            None if nothing changed, else what :meth:`reload` returned.
        """
        self.live.check()
        now = self._files_state()
        if now == self._tried:
            return None
        ok = self.reload()
        self._tried = self._files_state()
        return ok

    def _files_state(self) -> tuple[int, str | None, int | None]:
        """The live config's version and state, and the roster file's mtime."""
        path = roster_path(self.config, self.config_path)
        return (self.live.version, self.live.error, None if path is None else _mtime(path))

    def run(self, stop: threading.Event, period_s: float = TICK_S) -> None:
        """Tick every ``period_s`` until ``stop`` is set; reload changed files first."""
        logger.info("alert engine running %d rule(s)", len(self.config.alerts))
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                self.reload_if_changed()
                self.tick(int(time.time() * 1000))
            except Exception:
                logger.exception("alert tick failed; trying again next tick")
            next_at = max(next_at + period_s, time.monotonic())
            stop.wait(next_at - time.monotonic())

    def close(self) -> None:
        """Stop the webhook threads, silence the buzzer, close the database."""
        for sender, _ in self._webhooks:
            sender.close()
        if self._buzzer is not None:
            self._buzzer.close()
        self.conn.close()
