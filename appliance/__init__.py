"""The box itself, one room per job: config, box (the runtime), analytics, alerts, cli."""
