"""Dockspace's admin site: a verified second factor for anyone who has one, and every change audited."""

from django.contrib import admin
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from accounts.admin_audit import AuditedAdminMixin


class DockspaceAdminSite(admin.AdminSite):
    site_header = "Dockspace administration"
    site_title = "Dockspace admin"
    index_title = "Administration"

    def has_permission(self, request):
        from accounts.selectors import user_needs_second_factor

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
        audited = type(f"Audited{base.__name__}", (AuditedAdminMixin, base), {})
        super().register(model_or_iterable, audited, **options)
