"""mailbridge: turns a support mailbox into tickets."""

__version__ = "0.1.0"
