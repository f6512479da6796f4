"""The Django request behind the current OAuth call, for audit entries written deep in the validator
(which sees only oauthlib's request)."""

import contextlib
from contextvars import ContextVar

from accounts.audit import audit

_django_request = ContextVar("dockspace_oauth_request", default=None)


@contextlib.contextmanager
def oauth_request(request):
    token = _django_request.set(request)
    try:
        yield
    finally:
        _django_request.reset(token)


def audit_oauth(action, *, user=None, application=None, reason=""):
    """Audit an OAuth event: who, which app, why. Never a code, token or secret."""
    request = _django_request.get()
    app_label = (
        f"{application.name or application.client_id} ({application.client_id})" if application else "unknown app"
    )
    audit(
        action,
        request=request,
        actor=user,
        actor_label=None if user is not None else (f"client {application.client_id}" if application else None),
        target=application,
        description=f"{app_label}: {reason}"[:500],
    )
