from django.apps import AppConfig

from dockspace.schedule import PeriodicTask


class ExtensionAppConfig(AppConfig):
    name = "dockspace.tests.extension_app"
    label = "extension_app"
    verbose_name = "Test extension"
    default_auto_field = "django.db.models.BigAutoField"

    def periodic_tasks(self):
        return [
            PeriodicTask(
                name="Count the people (test extension)",
                task="extension_app.count_people",
                interval_minutes=10,
                expires_seconds=60,
                description="Proves that an app adds a periodic task by declaring it in its own AppConfig.",
            ),
        ]
