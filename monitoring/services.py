"""Installing the periodic tasks the apps declare (dockspace.schedule) into django-celery-beat's tables."""

from dataclasses import dataclass

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

# Ends the description of every row installed from a declaration: it tells operators that edits do not last, and
# tells the next install which rows are its own. Rows without it (made by hand in the admin) are never touched.
INSTALLED_MARK = "Installed from Dockspace's declarations at every start; changes made here are overwritten."


@dataclass(frozen=True)
class PeriodicTasksInstalled:
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    removed: list[str]


def _schedule_fields(declared):
    if declared.crontab is not None:
        crontab, _ = CrontabSchedule.objects.get_or_create(
            timezone="UTC",
            minute=declared.crontab.minute,
            hour=declared.crontab.hour,
            day_of_week=declared.crontab.day_of_week,
            day_of_month=declared.crontab.day_of_month,
            month_of_year=declared.crontab.month_of_year,
        )
        return {"crontab": crontab, "interval": None}
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=declared.interval_minutes, period=IntervalSchedule.MINUTES
    )
    return {"crontab": None, "interval": interval}


def periodic_tasks_install(declared):
    """Make beat's schedule match the declarations. Idempotent: each declared task is created, or updated by name
    (a row of that name made by hand is taken over); a row installed from a declaration that no app declares any
    more is deleted (its task may be gone); rows made by hand are left alone. An operator who switched a
    declared task off keeps it off: "enabled" is set only when the row is created."""
    created, updated, unchanged = [], [], []
    with transaction.atomic():
        for spec in declared:
            fields = {
                "task": spec.task,
                **_schedule_fields(spec),
                "solar": None,
                "clocked": None,
                "expires": None,
                "expire_seconds": spec.expires_seconds,
                "description": f"{spec.description}\n\n{INSTALLED_MARK}",
            }
            row = PeriodicTask.objects.filter(name=spec.name).first()
            if row is None:
                PeriodicTask.objects.create(name=spec.name, enabled=True, **fields)
                created.append(spec.name)
            elif any(getattr(row, key) != value for key, value in fields.items()):
                for key, value in fields.items():
                    setattr(row, key, value)
                row.save()
                updated.append(spec.name)
            else:
                unchanged.append(spec.name)
        removed = []
        stale = PeriodicTask.objects.filter(description__endswith=INSTALLED_MARK).exclude(
            name__in=[spec.name for spec in declared]
        )
        for row in stale:
            row.delete()  # one by one: the model's delete() tells a running beat to reload its schedule
            removed.append(row.name)
    return PeriodicTasksInstalled(created, updated, unchanged, removed)
