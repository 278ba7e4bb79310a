"""The running box: camera wiring, supervision, scheduled jobs, health, systemd notify, logs."""
