"""Reads about people that views, the admin and middleware share."""

from datetime import timedelta
from typing import Any

from django.apps import apps
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Exists, Model, OuterRef, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django_otp import device_classes, user_has_device

from accounts.models import User, UserSession, hash_session_key


def _device_fact(model: type[Model]) -> str:
    return f"has_confirmed_{model._meta.label_lower.replace('.', '_')}"


def with_second_factor_facts(people: QuerySet[User]) -> QuerySet[User]:
    """People with whether they have a confirmed device of each kind django-otp knows (TOTP, backup codes, any
    other installed plugin), in the same query: the sign-in backend fetches the person this way, so the password
    step asks no further query to decide on a code."""
    return people.annotate(
        **{
            _device_fact(model): Exists(model.objects.filter(user=OuterRef("pk"), confirmed=True))
            for model in device_classes()
        }
    )


def has_second_factor(user: User | AnonymousUser) -> bool:
    """Whether the person must give a code after the password: any confirmed device (django-otp's rule)."""
    facts = [getattr(user, _device_fact(model), None) for model in device_classes()]
    if None not in facts:
        return any(facts)
    return user_has_device(user)


def user_needs_second_factor(request: HttpRequest) -> bool:
    """True when the signed-in person has a device but this session has not verified one."""
    user = request.user
    if not user.is_authenticated:
        return False
    # django-otp's OTPMiddleware adds is_verified() to request.user; the model does not declare it.
    return user_has_device(user) and not user.is_verified()  # type: ignore[attr-defined]


def sessions_of(user: User, current_session_key: str | None = None) -> list[UserSession]:
    """The person's unexpired browser sessions, newest activity first, the current one marked."""
    current = hash_session_key(current_session_key) if current_session_key else None
    rows = list(UserSession.objects.filter(user=user, expire_date__gt=timezone.now()).order_by("-last_seen_at"))
    recent = timezone.now() - timedelta(minutes=2)
    for row in rows:
        row.is_current = row.session_key == current
        row.seen_recently = row.last_seen_at >= recent
    return rows


def profile_context(person: User) -> dict[str, Any]:
    """What the apps above accounts show on a person's profile page: each app whose AppConfig has a
    `profile_context(person)` method adds its entries to the page's template context (mail: "mail", oidc: "apps").
    Two apps setting the same entry is a mistake, refused rather than one hiding the other."""
    context: dict[str, Any] = {}
    for config in apps.get_app_configs():
        contribute = getattr(config, "profile_context", None)
        if contribute is None:
            continue
        for key, value in contribute(person).items():
            if key in context:
                raise ImproperlyConfigured(f"profile_context: {config.label} sets {key!r}, which another app set.")
            context[key] = value
    return context


def profile_panels(request: HttpRequest) -> list[SafeString]:
    """What the apps above accounts show on the signed-in person's profile page as a panel of their own (monitoring:
    their mail in the last 30 days). The seam: an AppConfig with `profile_panel(request)` returns HTML about
    request.user alone (safe, rendered by a template) or ""."""
    panels = []
    for config in apps.get_app_configs():
        panel = getattr(config, "profile_panel", None)
        html = panel(request) if panel is not None else ""
        if html:
            panels.append(mark_safe(html))  # noqa: S308 (the app rendered it with an autoescaping template)
    return panels
