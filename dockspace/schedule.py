"""Periodic tasks as data: each app declares its own in `AppConfig.periodic_tasks()`, `declared_periodic_tasks()`
collects them, and `manage.py install_periodic_tasks` installs them into Celery beat's schedule by name."""

from dataclasses import dataclass

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

# django-celery-beat's PeriodicTask.name
NAME_MAX_LENGTH = 200


@dataclass(frozen=True, kw_only=True)
class Crontab:
    """A crontab schedule in UTC; a field left out means every ("*")."""

    minute: str = "*"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"


@dataclass(frozen=True, kw_only=True)
class PeriodicTask:
    """One periodic task: its schedule row's `name` (unique; what the admin shows), the Celery `task` name it runs
    (the task is marked `@shared_task(..., is_periodic=True)`), exactly one schedule (`crontab` or
    `interval_minutes`), `expires_seconds` (a run that has not started this long after beat sent it is dropped
    instead of piling up behind a stopped worker; the task's own retries keep that deadline) and a `description`
    for operators."""

    name: str
    task: str
    crontab: Crontab | None = None
    interval_minutes: int | None = None
    expires_seconds: int
    description: str

    def __post_init__(self):
        if not self.name or len(self.name) > NAME_MAX_LENGTH:
            raise ValueError(f"periodic task name: 1 to {NAME_MAX_LENGTH} characters, got {self.name!r}.")
        if not self.task:
            raise ValueError(f"periodic task {self.name!r}: task must name a Celery task.")
        if (self.crontab is None) == (self.interval_minutes is None):
            raise ValueError(f"periodic task {self.name!r}: give exactly one of crontab and interval_minutes.")
        if self.interval_minutes is not None and self.interval_minutes < 1:
            raise ValueError(f"periodic task {self.name!r}: interval_minutes must be at least 1.")
        if self.expires_seconds < 1:
            raise ValueError(f"periodic task {self.name!r}: expires_seconds must be at least 1.")
        if self.interval_minutes is not None and self.expires_seconds > self.interval_minutes * 60:
            # Otherwise a late run and the next one could both be waiting for the worker.
            raise ValueError(
                f"periodic task {self.name!r}: expires_seconds must not exceed the interval "
                f"({self.interval_minutes * 60} seconds)."
            )
        if not self.description:
            raise ValueError(f"periodic task {self.name!r}: description must say what the task does.")


def declared_periodic_tasks():
    """Every app's periodic tasks (`AppConfig.periodic_tasks()`), in INSTALLED_APPS order."""
    declared, owner = [], {}
    for config in apps.get_app_configs():
        method = getattr(config, "periodic_tasks", None)
        if method is None:
            continue
        for task in method():
            if task.name in owner:
                raise ImproperlyConfigured(
                    f"The periodic task {task.name!r} is declared by both {owner[task.name]} and {config.label}."
                )
            owner[task.name] = config.label
            declared.append(task)
    return declared
