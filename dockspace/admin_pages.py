"""Admin pages beyond the model lists, as data: an app declares its own in `AppConfig.admin_pages()` and the admin
site (accounts.admin_site) serves each at /admin/<app_label>/<slug>/, lists it with the app's models on the index
and the sidebar for those who may view it, and refuses everyone else (403)."""

from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps


@dataclass(frozen=True, kw_only=True)
class AdminPage:
    """`view(request, context)` renders the page; `context` is the admin's own (sidebar, title...). `permission`
    ("app_label.codename") is what a staff member needs (superusers hold every permission)."""

    app_label: str
    slug: str
    title: str
    view: Callable
    permission: str

    @property
    def url_name(self):
        return f"{self.app_label}_{self.slug}"

    def may_view(self, user) -> bool:
        return bool(user.is_active and user.is_staff and user.has_perm(self.permission))


def declared_admin_pages() -> list[AdminPage]:
    pages = []
    for config in apps.get_app_configs():
        method = getattr(config, "admin_pages", None)
        if method is not None:
            pages.extend(method())
    return pages


def declared_dashboard_cards(request) -> list:
    """Every app's cards for the admin's home page (`AppConfig.dashboard_cards(request)`), each already limited to
    what request.user may view; an app with nothing to show returns none."""
    cards = []
    for config in apps.get_app_configs():
        method = getattr(config, "dashboard_cards", None)
        if method is not None:
            cards.extend(method(request))
    return cards
