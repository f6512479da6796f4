"""The Celery application: configuration comes from Django settings (CELERY_* names)."""

import os

from celery import Celery

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
