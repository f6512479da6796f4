from django.apps import AppConfig


class ExtensionAppConfig(AppConfig):
    name = "dockspace.tests.extension_app"
    label = "extension_app"
    verbose_name = "Test extension"
    default_auto_field = "django.db.models.BigAutoField"

    def dms_files(self):
        from dockspace.tests.extension_app.dms import HELO_ACCESS

        return [HELO_ACCESS]
