from django.core.management.base import BaseCommand

from dockspace.schedule import PERIODIC_TASKS
from monitoring.services import periodic_tasks_install


class Command(BaseCommand):
    help = (
        "Install or update Dockspace's periodic tasks (audit-log purge, session cleanup, ...) in "
        "Celery beat's database schedule. Safe to run at every start: tasks are matched by name."
    )

    def handle(self, *args, **options):
        created, updated = periodic_tasks_install(PERIODIC_TASKS)
        unchanged = len(PERIODIC_TASKS) - len(created) - len(updated)
        self.stdout.write(f"Periodic tasks: {len(created)} created, {len(updated)} updated, {unchanged} unchanged.")
