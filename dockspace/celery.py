"""The Celery application: configuration comes from Django settings (CELERY_* names)."""

import os

from celery import Celery
from celery.signals import worker_init

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


@worker_init.connect
def _catch_up_at_worker_start(sender, **kwargs):
    """Work a worker does when it starts, before it connects to the broker or forks its pool, named here
    one by one.

    The DMS files: a worker killed mid-write left a journal to roll forward, and one killed while it held
    a queued sync lost that task (the embedded broker drops a message when a worker fetches it); the
    pending changes recorded in the database say what is behind, and this writes it now."""
    import django
    from django.db import connections

    django.setup()  # idempotent; the worker may not have set Django up yet at this point
    from mail.dms.sync import worker_started

    try:
        worker_started()
    finally:
        connections.close_all()  # never hand a database connection to the pool's forked children
