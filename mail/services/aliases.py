"""Aliases and catch-alls: their targets, the forwarding-loop check, and what an address going away leaves."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, cast

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count

from accounts import authz
from accounts.audit import audit
from dockspace.validation import field_error
from mail.addresses import normalize_address, normalize_alias_address, split_address
from mail.models import Alias, AliasTarget, Domain, Group
from mail.services.actor import _who
from mail.services.capture import _check_capture, _check_removal, address_owner
from mail.services.domains import managed_domain
from mail.services.tiers import _tier_check_alias

if TYPE_CHECKING:
    from django.http import HttpRequest


def _clean_targets(targets: str | Iterable[str] | None, *, alias_address: str) -> list[str]:
    if isinstance(targets, str):
        targets = [targets]
    cleaned: list[str] = []
    for raw in targets or []:
        if isinstance(raw, str) and raw.startswith("@"):
            raise field_error(
                "targets", f"{raw!r} is not an address: a target must be a full address like name@example.com."
            )
        try:
            target = normalize_address(raw, "targets")
        except ValidationError as e:
            # One of several targets broke a rule: name it, unless the rule's wording already quotes it.
            rule = e.messages[0].removeprefix("targets: ")
            raise field_error("targets", rule if f"'{raw}'" in rule else f"{raw!r}: {rule}") from None
        if target not in cleaned:
            cleaned.append(target)
    if not cleaned:
        raise field_error("targets", "an alias needs at least one target address.")
    for target in cleaned:
        if target == alias_address:
            raise field_error("targets", f"{target} cannot forward to itself; tick 'keep a copy' instead.")
        domain_name = split_address(target)[1]
        if Domain.objects.filter(name=domain_name).exists() and not address_owner(target):
            raise field_error(
                "targets", f"{target} is on a managed domain but is not a mailbox, alias or list; create it first."
            )
    return cleaned


def _forward_graph() -> dict[str, list[str]]:
    graph: dict[str, list[str]] = {}
    for alias_address, target in AliasTarget.objects.filter(alias__is_active=True).values_list(
        "alias__address", "address"
    ):
        graph.setdefault(alias_address, []).append(target)
    for group in Group.objects.exclude(list_address=None).prefetch_related("members__mailbox"):
        graph[cast(str, group.list_address)] = [m.mailbox.address for m in group.members.all() if hasattr(m, "mailbox")]
    return graph


def _check_no_loop(address: str, targets: Sequence[str]) -> None:
    graph = _forward_graph()
    graph[address] = list(targets)
    stack, seen = [(t, [address, t]) for t in targets], set()
    while stack:
        node, path = stack.pop()
        if node == address:
            raise field_error("targets", "this would make a forwarding loop: " + " -> ".join(path) + ".")
        if node in seen:
            continue
        seen.add(node)
        stack.extend((n, path + [n]) for n in graph.get(node, []) if n != node)


@transaction.atomic
def alias_create(
    *,
    address: str,
    targets: str | Iterable[str],
    keep_copy: bool = False,
    description: str = "",
    is_active: bool = True,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> Alias:
    """An alias 'user@domain' or a catch-all '@domain' forwarding to targets (local or external)."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.add_alias", "address")
    address = normalize_alias_address(address, "address")
    local, domain_name = split_address(address)
    domain = managed_domain(domain_name, "address", lock=True)
    owner = address_owner(address)
    if keep_copy:
        if owner != "a mailbox":
            raise field_error("keep_copy", f"keep a copy needs a mailbox at {address}; there is none.")
        if Alias.objects.filter(address=address).exists():
            raise field_error("address", f"{address} already forwards; change that alias instead.")
    elif owner:
        hint = " (to forward and keep a copy, tick 'keep a copy')" if owner == "a mailbox" else ""
        raise field_error("address", f"{address} is already {owner}{hint}.")
    cleaned = _clean_targets(targets, alias_address=address)
    _check_capture(actor, address, "keep_copy" if keep_copy else "address")
    _tier_check_alias(domain)
    _check_no_loop(address, cleaned)
    alias = Alias(domain=domain, local_part=local, keep_copy=keep_copy, description=description, is_active=is_active)
    alias.save()
    AliasTarget.objects.bulk_create(AliasTarget(alias=alias, address=t, position=i) for i, t in enumerate(cleaned))
    kind = "catch-all" if not local else "alias"
    audit(
        "mail.alias.add",
        target=alias,
        description=f"Created {kind} to {len(cleaned)} target(s)" + (", keeping a copy." if keep_copy else "."),
        **_who(request, actor_label, actor),
    )
    return alias


@transaction.atomic
def alias_update(
    *,
    alias: Alias,
    targets: str | Iterable[str] | None = None,
    is_active: bool | None = None,
    description: str | None = None,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> Alias:
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.change_alias", "targets")
    alias = Alias.objects.select_for_update(of=("self",)).get(pk=alias.pk)
    cleaned = None if targets is None else _clean_targets(targets, alias_address=alias.address)
    if (cleaned is not None and cleaned != alias.target_list) or (
        is_active is not None and is_active != alias.is_active
    ):
        _check_capture(actor, alias.address, "targets")
    if cleaned is not None:  # targets were given
        _check_no_loop(alias.address, cleaned)
        alias.targets.all().delete()
        AliasTarget.objects.bulk_create(AliasTarget(alias=alias, address=t, position=i) for i, t in enumerate(cleaned))
    if is_active is not None:
        if is_active and not alias.is_active and targets is None:
            # Switching an alias back on can close a loop as surely as new targets can.
            _check_no_loop(alias.address, alias.target_list)
        alias.is_active = is_active
    if description is not None:
        alias.description = description
    alias.save()
    audit("mail.alias.change", target=alias, description="Changed alias.", **_who(request, actor_label, actor))
    return alias


def _drop_as_target(address: str) -> None:
    """Remove an address that is going away from every alias forwarding to it; refuse if an alias
    would be left forwarding to nothing."""
    stranded = sorted(
        Alias.objects.filter(pk__in=AliasTarget.objects.filter(address=address).values("alias_id"))
        .exclude(address=address)
        .annotate(n=Count("targets"))
        .filter(n=1)
        .values_list("address", flat=True)
    )
    if stranded:
        raise field_error(
            "address",
            f"removing {address} would leave {', '.join(stranded)} with no target; "
            "give it another target or remove it first.",
        )
    AliasTarget.objects.filter(address=address).exclude(alias__address=address).delete()


@transaction.atomic
def alias_remove(
    *,
    alias: Alias,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> None:
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.delete_alias", "address")
    _check_removal(actor, alias.address)
    _drop_as_target(alias.address)
    audit("mail.alias.remove", target=alias, description="Removed alias.", **_who(request, actor_label, actor))
    alias.delete()
