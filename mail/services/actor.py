"""Who changed something, as every audit event of the mail services records it."""

from accounts import authz


def _who(request, actor_label, actor=None):
    return {"request": request, "actor_label": actor_label, "actor": authz.audit_actor(actor)}
