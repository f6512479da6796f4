"""The Celery application: configuration comes from Django settings (CELERY_* names)."""

import os

from celery import Celery
from celery.signals import beat_init, worker_init, worker_process_init

from dockspace.private_files import private_dir

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockspace.settings")

app = Celery("dockspace")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _prepare_embedded_broker(sender, **kwargs):
    # The filesystem transport (used when REDIS_URL is unset) needs its folders to exist; they hold task
    # arguments (addresses), so only Dockspace's user may read them.
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            private_dir(options[key])
    backend = str(sender.conf.result_backend or "")
    if backend.startswith("file://"):
        private_dir(backend[len("file://") :])


def queue_task(name, *args, **kwargs):
    """Queue the task registered as `name` (its @shared_task name) with these arguments, through the task Celery
    registered, so its retry policy (and eager mode in tests) applies; an unknown name raises NotRegistered (a
    KeyError). Domain code queues work this way rather than importing a tasks module: tasks call the domain, never
    the reverse (import-linter's tasks contract)."""
    if name not in app.tasks:
        # A web process imports the apps' tasks modules only now, as a worker does when it starts.
        app.loader.import_default_modules()
    return app.tasks[name].apply_async(args=args, kwargs=kwargs)


@worker_init.connect
def _catch_up_at_worker_start(sender, **kwargs):
    """Work a worker does when it starts, before it connects to the broker or forks its pool: each app whose
    AppConfig has a `worker_started()` method runs it, in INSTALLED_APPS order (mail: the DMS files' catch-up)."""
    import django
    from django.apps import apps
    from django.db import connections

    django.setup()  # idempotent; the worker may not have set Django up yet at this point
    try:
        for config in apps.get_app_configs():
            started = getattr(config, "worker_started", None)
            if started is not None:
                started()
    finally:
        connections.close_all()  # never hand a database connection to the pool's forked children


@worker_process_init.connect
def _trace_pool_process(sender=None, **kwargs):
    """Tracing starts in each process that runs tasks (a prefork child; the worker itself with --pool solo), after
    the fork; without OTEL_EXPORTER_OTLP_ENDPOINT nothing is loaded (README "Tracing")."""
    from dockspace.tracing import configure

    configure("dockspace-worker")


@beat_init.connect
def _trace_beat(sender=None, **kwargs):
    from dockspace.tracing import configure

    configure("dockspace-beat")
