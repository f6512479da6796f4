"""Monitoring's pages in the admin site beyond the model lists (declared in MonitoringConfig.admin_pages(); the
admin site checks staff, second factor and the page's permission before calling them)."""

from django.template.response import TemplateResponse

from monitoring import scheduler

# The page shows beat's schedule read-only (names, schedules, outcomes; never a task's arguments): anyone allowed to
# view the schedule rows may see it. Only superusers hold it by default (beat's own admin is superuser-only); a
# staff member can be granted it to watch the scheduler without being able to change it.
SCHEDULER_PERMISSION = "django_celery_beat.view_periodictask"


def scheduler_view(request, context):
    return TemplateResponse(
        request, "admin/monitoring/scheduler.html", {**context, "state": scheduler.scheduler_state()}
    )
