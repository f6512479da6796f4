"""Dockspace's admin site: a verified second factor for anyone who has one, and every change audited.

In accounts, which holds both (second factors and the audit log); DockspaceAdminConfig names it by dotted path."""

from django.apps import apps as app_registry
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models.constants import LOOKUP_SEP
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.http import urlencode

from accounts.admin_audit import AuditedAdminMixin
from accounts.selectors import user_needs_second_factor
from dockspace.admin_pages import declared_admin_pages, declared_dashboard_cards

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


# A change list filters on any field named in its URL (?field__regex=...): counting the rows that come back reads a
# field one character at a time, even one the admin never shows. Fields whose names hold these words (passwords and
# hashes, private keys, secrets, tokens, message bodies, a second factor's key, URLs whose path may hold a token such as
# an alert webhook's) are never filtered on.
SECRET_FIELD_WORDS = ("password", "hash", "secret", "private", "pem", "token", "mime", "body", "session_key", "url")
SECRET_FIELD_NAMES = {"key", "bin_key"}  # django-otp devices' keys, reachable through a person (?totpdevice__key=)


def is_secret_lookup(lookup):
    parts = [part.lower() for part in lookup.split(LOOKUP_SEP)]
    return any(part in SECRET_FIELD_NAMES or any(word in part for word in SECRET_FIELD_WORDS) for part in parts)


class NoSecretLookupsMixin:
    """Refuses (400 Bad Request, nothing listed) a filter on a secret field, for every admin of the site."""

    def lookup_allowed(self, lookup, value, request=None):
        if is_secret_lookup(lookup):
            return False
        return super().lookup_allowed(lookup, value, request)


class OutOfRangeLookupsMixin:
    """A filter value out of a date's range (?created_at__year=99999999999999999999, or 9999 whose next year does not
    exist) makes the change list raise OverflowError or ValueError where Django expects IncorrectLookupParameters:
    turned into that, the list redirects to itself with ?e=1 as for any other bad filter, instead of a 500."""

    def get_changelist_instance(self, request):
        try:
            return super().get_changelist_instance(request)
        except (OverflowError, ValueError) as exc:
            raise IncorrectLookupParameters(exc) from exc


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
        mixins = (NoSecretLookupsMixin, OutOfRangeLookupsMixin, AuditedAdminMixin)
        if any(model._meta.app_label == SCHEDULER_APP for model in models):
            mixins = (SuperuserOnlyAdminMixin, *mixins)
        audited = type(f"Audited{base.__name__}", (*mixins, base), {})
        super().register(model_or_iterable, audited, **options)

    def get_urls(self):
        """Each app's own admin pages (dockspace.admin_pages) at /admin/<app_label>/<slug>/, before the admin's
        catch-all."""
        pages = [
            path(f"{page.app_label}/{page.slug}/", self.admin_view(self._page_view(page)), name=page.url_name)
            for page in declared_admin_pages()
        ]
        return pages + super().get_urls()

    def _page_view(self, page):
        def view(request):
            if not page.may_view(request.user):
                raise PermissionDenied
            context = {**self.each_context(request), "title": page.title, "app_label": page.app_label}
            return page.view(request, context)

        return view

    def index(self, request, extra_context=None):
        """The home page: the apps' dashboard cards (each limited to what the person may view), then the models."""
        extra_context = {"dashboard_cards": declared_dashboard_cards(request), **(extra_context or {})}
        return super().index(request, extra_context)

    def _pages_in_app_list(self, request, apps, app_label=None):
        """The admin pages a person may view, listed with their app's models (an app entry is added if needed)."""
        by_label = {app["app_label"]: app for app in apps}
        for page in declared_admin_pages():
            if (app_label is not None and page.app_label != app_label) or not page.may_view(request.user):
                continue
            app = by_label.get(page.app_label)
            if app is None:
                config = app_registry.get_app_config(page.app_label)
                app = {
                    "name": config.verbose_name,
                    "app_label": page.app_label,
                    "app_url": reverse(f"{self.name}:{page.url_name}"),
                    "has_module_perms": True,
                    "models": [],
                }
                by_label[page.app_label] = app
                apps.append(app)
            app["models"].append(
                {
                    "name": page.title,
                    "object_name": page.slug,
                    "perms": {"view": True},
                    "admin_url": reverse(f"{self.name}:{page.url_name}"),
                    "add_url": None,
                    "view_only": True,
                }
            )
            app["models"].sort(key=lambda model: model["name"])
        return sorted(apps, key=lambda app: app["name"].lower())

    def get_app_list(self, request, app_label=None):
        """Celery beat's models form one "Scheduler" section, last (superusers only, see the mixin); the apps' own
        pages are listed with their models."""
        apps = self._pages_in_app_list(request, super().get_app_list(request, app_label), app_label)
        scheduler = [app for app in apps if app["app_label"] == SCHEDULER_APP]
        for app in scheduler:
            app["name"] = "Scheduler"
        return [app for app in apps if app["app_label"] != SCHEDULER_APP] + scheduler
