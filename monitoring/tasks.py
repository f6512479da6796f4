"""Celery tasks for monitoring: thin; the work is in the modules they name."""

from celery import shared_task

from monitoring import heartbeats
from monitoring.models import Heartbeat


# No result kept: one a minute would pile up in the file result backend of the embedded broker.
@shared_task(name="monitoring.heartbeat", is_periodic=True, ignore_result=True)
def heartbeat():
    """Sent by beat every minute: the worker that runs it records that a worker takes tasks (/health/ready)."""
    heartbeats.heartbeat_record(Heartbeat.WORKER)
    return "worker heartbeat recorded"
