"""The daemon (its pollers, its sender, its scheduler) and running it as a service: systemd
notification, health, metrics, reload and status."""
