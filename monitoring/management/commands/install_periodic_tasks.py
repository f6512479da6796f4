from django.core.management.base import BaseCommand

from dockspace.schedule import declared_periodic_tasks
from monitoring.services import periodic_tasks_install


class Command(BaseCommand):
    help = (
        "Install or update the periodic tasks Dockspace's apps declare (audit-log purge, session cleanup, ...) in "
        "Celery beat's database schedule. Safe to run at every start: tasks are matched by name, a task no app "
        "declares any more is removed, and schedules you added by hand in the admin are kept."
    )

    def handle(self, *args, **options):
        result = periodic_tasks_install(declared_periodic_tasks())
        self.stdout.write(
            f"Periodic tasks: {len(result.created)} created, {len(result.updated)} updated, "
            f"{len(result.unchanged)} unchanged, {len(result.removed)} removed."
        )
