"""Job Trigger console: scheduler, WebSocket hub, store and the Qt window."""

__version__ = "0.1.0"
