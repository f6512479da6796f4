"""The admin configuration: Dockspace's own admin site replaces Django's default one."""

from django.contrib.admin.apps import AdminConfig


class DockspaceAdminConfig(AdminConfig):
    default_site = "accounts.admin_site.DockspaceAdminSite"

    def processes(self):
        """web, worker and beat (dockspace.processes)."""
        from dockspace.processes import dockspace_processes

        return dockspace_processes()

    def ready(self):
        super().ready()  # autodiscovers every app's admin module
        from django.contrib import admin
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from dockspace import checks  # noqa: F401 - registers the system checks

        # TOTP secrets stay out of the admin: administrators reset a second factor, never read it.
        if admin.site.is_registered(TOTPDevice):
            admin.site.unregister(TOTPDevice)
        # One concept of group in Dockspace: mail.Group (lists, app access). Django's permission
        # groups stay usable in code but are not offered in the admin, to avoid two kinds of "group".
        from django.contrib.auth.models import Group as PermissionGroup

        if admin.site.is_registered(PermissionGroup):
            admin.site.unregister(PermissionGroup)
        # Tokens and codes are stored hashed and are managed per client and per person (revoke
        # from the client or the profile), so DOT's raw token admins are not offered.
        from oauth2_provider.models import (
            get_access_token_model,
            get_grant_model,
            get_id_token_model,
            get_refresh_token_model,
        )

        for model in (get_access_token_model(), get_grant_model(), get_id_token_model(), get_refresh_token_model()):
            if admin.site.is_registered(model):
                admin.site.unregister(model)
