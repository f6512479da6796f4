"""gunicorn's server hooks for the web process (dockspace.processes.web_argv passes
`--config python:dockspace.gunicorn_config`)."""

import os


def post_fork(server, worker):
    """In each new worker, before it loads the application: tracing starts here (README "Tracing"), so every worker
    has its own span processor thread and collector connection; Django's middleware is added before the WSGI handler
    reads it. Without OTEL_EXPORTER_OTLP_ENDPOINT this does nothing."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockspace.settings")
    from dockspace.tracing import configure

    configure("dockspace-web")


def child_exit(server, worker):
    """A worker exited (restarted, killed): prometheus_client drops its live gauges; its counters stay counted."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
