"""The service layer between the front ends (desktop/ui, desktop/headless.py) and the parts
below (store, hub, scheduler).  `Core` (core.py) is the facade; see docs/ARCHITECTURE.md."""

from desktop.service.core import Core
from desktop.service.lifecycle import ssl_context_from
from desktop.service.workers import WorkerStatus

__all__ = ["Core", "WorkerStatus", "ssl_context_from"]
