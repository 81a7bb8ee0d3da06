"""Job Trigger worker: connects out to the hub and runs allow-listed scripts."""

__version__ = "0.1.0"
