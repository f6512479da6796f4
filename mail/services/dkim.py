"""DKIM signing keys of a domain: generating, rotating and retiring them. Generating and rotating change the domain's
signing (mail.change_domain, as the admin's domain actions); retiring changes a key (mail.change_dkimkey, as the admin's
key action)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import apps
from django.db import transaction
from django.utils import timezone

from accounts import authz
from accounts.audit import audit
from dockspace.validation import field_error
from mail import dkim as dkim_keys
from mail.models import DkimKey, Domain
from mail.services.actor import _who

if TYPE_CHECKING:
    from django.http import HttpRequest

CHANGE_DOMAIN = "mail.change_domain"
CHANGE_KEY = "mail.change_dkimkey"


@transaction.atomic
def dkim_generate(
    *,
    domain: Domain,
    selector: str | None = None,
    algorithm: str | None = None,
    bits: int | None = None,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> DkimKey:
    """Create the domain's signing key. Refuses when one is active: rotate instead."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, CHANGE_DOMAIN, "domain")
    domain = Domain.objects.select_for_update(of=("self",)).get(pk=domain.pk)
    if domain.dkim_keys.filter(state=DkimKey.ACTIVE).exists():
        raise field_error("domain", f"{domain.name} already has an active DKIM key; rotate it instead.")
    selector = domain.dkim_selector if selector is None else selector
    return _dkim_new_key(domain, selector, algorithm, bits, request, actor, actor_label)


def _dkim_new_key(
    domain: Domain,
    selector: str,
    algorithm: str | None,
    bits: int | None,
    request: HttpRequest | None,
    actor: authz.Actor,
    actor_label: str | None,
    replaced: list[str] | None = None,
) -> DkimKey:
    dkim_keys.validate_selector(selector)
    if domain.dkim_keys.filter(selector=selector).exists():
        raise field_error("selector", f"{domain.name} already used the selector {selector!r}; pick another.")
    algorithm = algorithm or domain.dkim_algorithm
    bits = bits or domain.dkim_bits
    if algorithm not in dict(Domain.DKIM_ALGORITHMS):
        raise field_error("algorithm", "algorithm must be rsa or ed25519.")
    try:
        private_pem, public_b64 = dkim_keys.generate_dkim_key(algorithm, bits)
    except ValueError as e:
        raise field_error("bits", str(e)) from None
    key = DkimKey.objects.create(
        domain=domain,
        selector=selector,
        algorithm=algorithm,
        bits=bits if algorithm == Domain.DKIM_RSA else 0,
        private_key_pem=private_pem,
        public_key_b64=public_b64,
    )
    description = f"New DKIM key {algorithm}{'-' + str(bits) if algorithm == 'rsa' else ''} selector {selector}."
    if replaced:
        description += f" Rotated from {', '.join(replaced)} (still published until retired)."
    audit("mail.dkim.generate", target=domain, description=description, **_who(request, actor_label, actor))
    return key


@transaction.atomic
def dkim_rotate(
    *,
    domain: Domain,
    selector: str | None = None,
    algorithm: str | None = None,
    bits: int | None = None,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> DkimKey:
    """A new key with a new selector signs from now on; the old one stays published until retired."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, CHANGE_DOMAIN, "domain")
    domain = Domain.objects.select_for_update(of=("self",)).get(pk=domain.pk)
    replaced = list(domain.dkim_keys.filter(state=DkimKey.ACTIVE).values_list("selector", flat=True))
    DkimKey.objects.filter(domain=domain, state=DkimKey.ACTIVE).update(state=DkimKey.PUBLISHED)
    used = set(domain.dkim_keys.values_list("selector", flat=True))
    if selector is None:
        selector = dkim_keys.next_selector(used, timezone.localdate())
    return _dkim_new_key(domain, selector, algorithm, bits, request, actor, actor_label, replaced)


def dkim_retire_objections(key: DkimKey) -> list[str]:
    """Why retiring `key` now would break mail, as apps above mail see it. The seam: an app whose AppConfig has
    `dkim_retire_objections(key)` returns a list of sentences (deliverability: the active key's record is not yet
    visible in DNS, so mail verifies only with the key being retired)."""
    found: list[str] = []
    for config in apps.get_app_configs():
        hook = getattr(config, "dkim_retire_objections", None)
        if hook is not None:
            found.extend(hook(key))
    return found


def dkim_retire(
    *,
    key: DkimKey,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
    force: bool = False,
) -> DkimKey:
    """Stop publishing a rotated-out key. Refused for the active key, and while an app objects (the new key not
    yet in DNS, or DNS could not be asked): asked before the transaction, as the objections may ask DNS, and after
    the permission check, so that nobody without it makes Dockspace ask DNS. `force` retires despite the
    objections (an operator who checked DNS by other means); the audit entry names them."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, CHANGE_KEY, "selector")
    if key.state == DkimKey.ACTIVE:
        raise field_error("state", "the active key cannot be retired; rotate first.")
    objections = dkim_retire_objections(key)
    if objections and not force:
        raise field_error("selector", f"{key.selector} is not retired: " + " ".join(objections))
    return _dkim_retire(key, request, actor, actor_label, overridden=objections)


@transaction.atomic
def _dkim_retire(
    key: DkimKey, request: HttpRequest | None, actor: authz.Actor, actor_label: str | None, overridden: list[str]
) -> DkimKey:
    key.state = DkimKey.RETIRED
    key.retired_at = timezone.now()
    key.save(update_fields=["state", "retired_at"])
    description = f"Retired DKIM selector {key.selector}."
    if overridden:
        description += " Forced despite: " + " ".join(overridden)
    audit("mail.dkim.retire", target=key.domain, description=description, **_who(request, actor_label, actor))
    return key
