"""The alert engine: rules over the live state, and their outputs (log, display, webhook, buzzer).

Public API::

    AlertEngine(config_path, db_path).run(stop_event)      # the runtime's loop
    evaluate(rules, snapshot, state, now_ms, inputs=...)  # one step of the rules
    active_alerts(conn), alert_history(conn, ...), acknowledge(conn, alert_id, user)
"""

from appliance.alerts.engine import AlertEngine, AlertSetup, AlertSetupError, load_setup
from appliance.alerts.gpio import Buzzer, GpioBackend, GpiodBackend, SimulatedGpio
from appliance.alerts.log import AlertRecord, acknowledge, active_alerts, alert_history, get_alert
from appliance.alerts.measures import Inputs, SystemState, measure_system
from appliance.alerts.roster import Roster, RosterError, load_roster
from appliance.alerts.rules import AlertState, Transition, evaluate
from appliance.alerts.webhook import WebhookSender, sign, verify

__all__ = [
    "AlertEngine",
    "AlertRecord",
    "AlertSetup",
    "AlertSetupError",
    "AlertState",
    "Buzzer",
    "GpioBackend",
    "GpiodBackend",
    "Inputs",
    "Roster",
    "RosterError",
    "SimulatedGpio",
    "SystemState",
    "Transition",
    "WebhookSender",
    "acknowledge",
    "active_alerts",
    "alert_history",
    "evaluate",
    "get_alert",
    "load_roster",
    "load_setup",
    "measure_system",
    "sign",
    "verify",
]
