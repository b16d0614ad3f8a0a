"""Metering: what pods used, what it costs, and budget periods (pure; no I/O)."""
