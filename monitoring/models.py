"""Health probes, metrics and alerts."""
