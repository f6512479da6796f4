"""Writing the audit log. Callers pass what happened in words; never a password, code, token or secret."""

from accounts.models import AuditEvent
from dockspace.client_ip import client_ip


def _label(obj):
    return str(obj)[:254] if obj is not None else ""


def audit(action, *, request=None, actor=None, actor_label=None, target=None, description="", ip=None):
    """Record one event. `actor` defaults to the signed-in person of `request`; commands name
    themselves with `actor_label`."""
    event = audit_event(
        action, request=request, actor=actor, actor_label=actor_label, target=target, description=description, ip=ip
    )
    event.save(force_insert=True)
    return event


def audit_event(action, *, request=None, actor=None, actor_label=None, target=None, description="", ip=None):
    """The event audit() records, unsaved: for writing many at once with AuditEvent.objects.bulk_create."""
    user = getattr(request, "user", None)
    if actor is None and user is not None and user.is_authenticated:
        actor = user
    if ip is None and request is not None:
        ip = client_ip(request)
    return AuditEvent(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=actor_label
        or (_label(actor) if actor is not None else ("system" if request is None else "anonymous")),
        ip=ip,
        action=action,
        target_type=target._meta.label if target is not None and hasattr(target, "_meta") else "",
        target_id=str(getattr(target, "pk", "") or ""),
        target_label=_label(target),
        description=description[:500],
    )
