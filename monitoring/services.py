"""Installing the periodic tasks declared in dockspace.schedule into django-celery-beat's tables."""

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask


def periodic_tasks_install(declared):
    """Create or update each declared task by name; returns (created, updated) names. Idempotent."""
    created, updated = [], []
    with transaction.atomic():
        for spec in declared:
            fields = {"task": spec["task"], "enabled": spec.get("enabled", True)}
            if "crontab" in spec:
                cron = {"minute": "*", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
                cron.update(spec["crontab"])
                fields["crontab"], _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **cron)
                fields["interval"] = None
            else:
                fields["interval"], _ = IntervalSchedule.objects.get_or_create(
                    every=spec["interval_minutes"], period=IntervalSchedule.MINUTES
                )
                fields["crontab"] = None
            task = PeriodicTask.objects.filter(name=spec["name"]).first()
            if task is None:
                PeriodicTask.objects.create(name=spec["name"], **fields)
                created.append(spec["name"])
            elif any(getattr(task, key) != value for key, value in fields.items()):
                for key, value in fields.items():
                    setattr(task, key, value)
                task.save()
                updated.append(spec["name"])
    return created, updated
