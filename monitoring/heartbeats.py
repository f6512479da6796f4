"""Whether Celery's worker and beat are alive, from what they write to the database themselves (so it works the
same with SQLite and the embedded broker as with PostgreSQL and Redis; nothing asks the broker).

- Worker: the periodic task `monitoring.heartbeat` (sent by beat every minute) records Heartbeat "worker" when a
  worker runs it, and every worker records it as it becomes ready to take tasks (Celery's worker_ready), so a fresh
  start is ready at once instead of after the first minute. A row younger than WORKER_SILENT_SECONDS means a worker
  took a task from the queue lately.
- Beat: records Heartbeat "beat" as it starts (Celery's beat_init). From then on its last tick is the last time it
  sent a task, which django-celery-beat writes on PeriodicTask.last_run_at as it sends it (settings:
  CELERY_BEAT_SYNC_EVERY = 1). Beat sends the heartbeat task every minute, so nothing sent for BEAT_SILENT_SECONDS
  means beat is stopped or stuck.

The heartbeat task runs only if beat sent it, so a fresh "worker" row after start-up also says beat works; the two
checks tell which of the two stopped.

- Watchdog: `manage.py watchdog` (monitoring.watchdog), which reports a stopped worker or beat without them,
  records Heartbeat "watchdog" at each round (every DOCKSPACE_WATCHDOG_INTERVAL seconds)."""

import logging
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connections
from django.db.models import Max
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from monitoring.models import Heartbeat

log = logging.getLogger(__name__)

# The heartbeat task runs every minute: two missed in a row is silence, one late run is not.
WORKER_SILENT_SECONDS = 120
BEAT_SILENT_SECONDS = 120


def watchdog_silent_seconds() -> int:
    """The watchdog is late after two missed rounds (at least two minutes, as the others)."""
    return max(WORKER_SILENT_SECONDS, 2 * settings.DOCKSPACE_WATCHDOG_INTERVAL)


def heartbeat_record(name: str, *, now: datetime | None = None) -> None:
    """Process `name` ("worker", "beat", "watchdog") is alive now: one UPDATE, an INSERT the first time."""
    now = now or timezone.now()
    if not Heartbeat.objects.filter(name=name).update(seen_at=now):
        Heartbeat.objects.update_or_create(name=name, defaults={"seen_at": now})


def last_seen() -> dict[str, datetime | None]:
    """{"worker": when a worker was last seen, "beat": beat's last tick, the later of its start and the last task
    it sent, "watchdog": its last round}; None: never (against this database). Two queries."""
    names = (Heartbeat.WORKER, Heartbeat.BEAT, Heartbeat.WATCHDOG)
    rows = dict(Heartbeat.objects.filter(name__in=names).values_list("name", "seen_at"))
    sent = PeriodicTask.objects.filter(enabled=True).aggregate(last=Max("last_run_at"))["last"]
    beat = max((moment for moment in (rows.get(Heartbeat.BEAT), sent) if moment is not None), default=None)
    return {
        Heartbeat.WORKER: rows.get(Heartbeat.WORKER),
        Heartbeat.BEAT: beat,
        Heartbeat.WATCHDOG: rows.get(Heartbeat.WATCHDOG),
    }


def _record_at_start(name: str) -> None:
    """At a process's start: a database that is not there yet (not migrated) is only logged; the periodic
    heartbeat records it later. The connection is closed: a worker forks its pool after this."""
    try:
        heartbeat_record(name)
    except DatabaseError as exc:
        log.warning("could not record the %s heartbeat at start (%s); the periodic one will", name, type(exc).__name__)
    finally:
        connections.close_all()


def on_worker_ready(sender=None, **kwargs):
    """Celery's worker_ready: the worker consumes from the broker."""
    _record_at_start(Heartbeat.WORKER)


def on_beat_init(sender=None, **kwargs):
    """Celery's beat_init: beat starts its scheduler."""
    _record_at_start(Heartbeat.BEAT)
