"""The one password of a person, for the web and for mail."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts import authz
from accounts.audit import audit
from accounts.signals import sign_in_revoked_send
from mail.services.actor import _who

if TYPE_CHECKING:
    from django.http import HttpRequest

    from accounts.models import User


def _apply_password(person: User, password: str, field: str = "password") -> None:
    try:
        validate_password(password, person)
    except ValidationError as e:
        raise ValidationError({field: e.messages}) from None
    person.set_password(password)


@transaction.atomic
def mail_password_set(
    *,
    person: User,
    password: str,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> None:
    """Set the one password of a person (web and mail). Every app token ends; browser sessions stay (callers decide)."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_may_manage_person(actor, person, "password")
    _apply_password(person, password)
    person.save()
    sign_in_revoked_send(user=person, reason="password set", **_who(request, actor_label, actor))
    audit(
        "password.set",
        target=person,
        description="Password set for web and mail.",
        **_who(request, actor_label, actor),
    )
