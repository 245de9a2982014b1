"""Running as a service: systemd notification, health, metrics, reload and status."""
