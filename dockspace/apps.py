"""The admin configuration: Dockspace's own admin site replaces Django's default one."""

from django.contrib.admin.apps import AdminConfig


class DockspaceAdminConfig(AdminConfig):
    default_site = "dockspace.admin.DockspaceAdminSite"

    def ready(self):
        super().ready()
        from dockspace import checks  # noqa: F401 - registers the system checks
