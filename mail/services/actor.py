"""Who changed something, as every audit event of the mail services records it."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from accounts import authz

if TYPE_CHECKING:
    from django.http import HttpRequest

    from accounts.models import User


class _Who(TypedDict):
    request: HttpRequest | None
    actor_label: str | None
    actor: User | None


def _who(request: HttpRequest | None, actor_label: str | None, actor: authz.Actor | None = None) -> _Who:
    return {"request": request, "actor_label": actor_label, "actor": authz.audit_actor(actor)}
