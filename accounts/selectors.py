"""Reads about people that views, the admin and middleware share."""

from datetime import timedelta

from django.utils import timezone
from django_otp import user_has_device

from accounts.models import UserSession, hash_session_key


def user_needs_second_factor(request):
    """True when the signed-in person has a device but this session has not verified one."""
    user = request.user
    if not user.is_authenticated:
        return False
    return user_has_device(user) and not user.is_verified()


def sessions_of(user, current_session_key=None):
    """The person's unexpired browser sessions, newest activity first, the current one marked."""
    current = hash_session_key(current_session_key) if current_session_key else None
    rows = list(UserSession.objects.filter(user=user, expire_date__gt=timezone.now()).order_by("-last_seen_at"))
    recent = timezone.now() - timedelta(minutes=2)
    for row in rows:
        row.is_current = row.session_key == current
        row.seen_recently = row.last_seen_at >= recent
    return rows
