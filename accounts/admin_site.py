"""Dockspace's admin site: a verified second factor for anyone who has one, and every change audited.

In accounts, which holds both (second factors and the audit log); DockspaceAdminConfig names it by dotted path."""

from django.contrib import admin
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from accounts.admin_audit import AuditedAdminMixin
from accounts.selectors import user_needs_second_factor

SCHEDULER_APP = "django_celery_beat"


class SuperuserOnlyAdminMixin:
    """Celery beat's schedules (clocked, crontabs, intervals, solar events, periodic tasks) are
    internals: only superusers see or change them, whatever permissions a staff member holds."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request, *args):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser


class DockspaceAdminSite(admin.AdminSite):
    site_header = "Dockspace administration"
    site_title = "Dockspace admin"
    index_title = "Administration"

    def has_permission(self, request):
        return super().has_permission(request) and not user_needs_second_factor(request)

    def login(self, request, extra_context=None):
        # One sign-in page for everyone: the admin's own form would skip the TOTP challenge.
        if request.user.is_authenticated and not request.user.is_staff:
            return redirect("accounts:no_access")
        next_url = request.GET.get("next") or reverse("admin:index")
        return redirect(f"{reverse('accounts:login')}?{urlencode({'next': next_url})}")

    def register(self, model_or_iterable, admin_class=None, **options):
        # Every ModelAdmin, ours and third-party ones, writes the audit log on add/change/delete.
        base = admin_class or admin.ModelAdmin
        models = [model_or_iterable] if isinstance(model_or_iterable, type) else list(model_or_iterable)
        mixins = (AuditedAdminMixin,)
        if any(model._meta.app_label == SCHEDULER_APP for model in models):
            mixins = (SuperuserOnlyAdminMixin, AuditedAdminMixin)
        audited = type(f"Audited{base.__name__}", (*mixins, base), {})
        super().register(model_or_iterable, audited, **options)

    def get_app_list(self, request, app_label=None):
        """Celery beat's models form one "Scheduler" section, last (superusers only, see the mixin)."""
        apps = super().get_app_list(request, app_label)
        scheduler = [app for app in apps if app["app_label"] == SCHEDULER_APP]
        for app in scheduler:
            app["name"] = "Scheduler"
        return [app for app in apps if app["app_label"] != SCHEDULER_APP] + scheduler
