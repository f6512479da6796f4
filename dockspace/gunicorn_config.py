"""gunicorn's server hooks for the web process (dockspace.processes.web_argv passes
`--config python:dockspace.gunicorn_config`)."""

import os


def child_exit(server, worker):
    """A worker exited (restarted, killed): prometheus_client drops its live gauges; its counters stay counted."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
