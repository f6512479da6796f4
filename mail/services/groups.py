"""Groups: their members (who may sign in to an app that a group gates) and their list address."""

from __future__ import annotations

from collections.abc import Iterable
from types import EllipsisType
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import transaction

from accounts import authz
from accounts.audit import audit
from accounts.models import normalize_email
from dockspace.validation import field_error
from mail.addresses import normalize_address, split_address
from mail.models import Domain, Group, Mailbox
from mail.services.actor import _who
from mail.services.aliases import _check_no_loop, _drop_as_target
from mail.services.capture import _check_capture, _check_removal, address_owner
from mail.services.domains import managed_domain

if TYPE_CHECKING:
    from django.http import HttpRequest

    from accounts.models import User
else:
    User = get_user_model()


def _group_list_address(
    address: str | None, group: Group | None = None, *, actor: authz.Actor
) -> tuple[Domain | None, str]:
    if not address:
        return None, ""
    address = normalize_address(address, "address")
    local, domain_name = split_address(address)
    domain = managed_domain(domain_name, "address")
    owner = address_owner(address)
    if owner and not (group is not None and group.list_address == address):
        raise field_error("address", f"{address} is already {owner}.")
    if group is None or group.list_address != address:
        _check_capture(actor, address)
    return domain, local


def _audit_access_change(
    group: Group,
    before: set[str],
    *,
    request: HttpRequest | None,
    actor: authz.Actor,
    actor_label: str | None,
) -> None:
    """Members of a group that gates sign-in somewhere were changed: that is an access grant."""
    gates = authz.group_gates(group)
    after = set(group.members.values_list("email", flat=True))
    if not gates or after == before:
        return
    added, removed = sorted(after - before), sorted(before - after)
    names = ", ".join(sorted({name for name, _ in gates}))
    text = f"Access to {names} through group {group.name}:"
    if added:
        text += " added " + ", ".join(added) + "."
    if removed:
        text += " removed " + ", ".join(removed) + "."
    audit("access.change", target=group, description=text, **_who(request, actor_label, actor))


def _people(addresses: Iterable[User | str] | None, field: str = "members") -> list[User]:
    people: list[User] = []
    person: User | None
    for raw in addresses or []:
        if isinstance(raw, User):
            person = raw
        else:
            # A sign-in address is stored as typed (lower case); a mailbox address is normalised.
            person = User.objects.filter(email=normalize_email(raw)).first()
            if person is None:
                email = normalize_address(raw, field)
                person = User.objects.filter(mailbox__address=email).first()
            if person is None:
                raise field_error(field, f"{raw} is not a person in Dockspace.")
        if person not in people:
            people.append(person)
    return people


def _member_mailboxes(group: Group) -> set[str]:
    return set(Mailbox.objects.filter(person__member_groups=group).values_list("address", flat=True))


@transaction.atomic
def group_create(
    *,
    name: str,
    address: str | None = None,
    members: Iterable[User | str] = (),
    description: str = "",
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> Group:
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.add_group", "name")
    name = (name or "").strip()
    group = Group(name=name, description=description)
    group.full_clean(exclude=["list_domain", "list_local_part", "list_address"])
    if Group.objects.filter(name__iexact=name).exists():
        raise field_error("name", f"a group named {name!r} already exists.")
    group.list_domain, group.list_local_part = _group_list_address(address, actor=actor)
    people = _people(members)
    group.save()
    group.members.set(people)
    audit(
        "mail.group.add",
        target=group,
        description=f"Created group with {len(people)} member(s).",
        **_who(request, actor_label, actor),
    )
    return group


@transaction.atomic
def group_update(
    *,
    group: Group,
    name: str | None = None,
    address: str | None | EllipsisType = ...,  # ...: the list address stays as it is
    description: str | None = None,
    add: Iterable[User | str] = (),
    remove: Iterable[User | str] = (),
    members: Iterable[User | str] | None = None,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> Group:
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.change_group", "name")
    group = Group.objects.select_for_update(of=("self",)).get(pk=group.pk)
    before = set(group.members.values_list("email", flat=True))
    mailboxes_before = _member_mailboxes(group)
    if name is not None and name != group.name:
        # Apps see groups by name: renaming a gate is changing who gets in.
        authz.require_may_change_group_access(actor, group, "name")
        if Group.objects.filter(name__iexact=name).exclude(pk=group.pk).exists():
            raise field_error("name", f"a group named {name!r} already exists.")
        group.name = name
    if address is not ...:
        previous = group.list_address
        group.list_domain, group.list_local_part = _group_list_address(address, group, actor=actor)
        new = f"{group.list_local_part}@{group.list_domain.name}" if group.list_domain else None
        if previous and previous != new:
            _check_removal(actor, previous, what="this list address")
            _drop_as_target(previous)
    if description is not None:
        group.description = description
    group.full_clean(exclude=["list_domain", "list_local_part", "list_address"])
    group.save()
    if members is not None:
        group.members.set(_people(members))
    if add:
        group.members.add(*_people(add))
    if remove:
        group.members.remove(*_people(remove))
    if set(group.members.values_list("email", flat=True)) != before:
        authz.require_may_change_group_access(actor, group, "members")
    if group.list_address and _member_mailboxes(group) != mailboxes_before:
        # Whoever's mail flows into the list now reaches other mailboxes.
        _check_capture(actor, group.list_address, "members")
    if group.list_address:
        _check_no_loop(group.list_address, [m.mailbox.address for m in group.members.all() if hasattr(m, "mailbox")])
    audit("mail.group.change", target=group, description="Changed group.", **_who(request, actor_label, actor))
    _audit_access_change(group, before, request=request, actor=actor, actor_label=actor_label)
    return group


@transaction.atomic
def group_remove(
    *,
    group: Group,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> None:
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, "mail.delete_group", "name")
    # Removing a gate would leave its app open to everyone (an empty allowed list means everyone).
    authz.require_may_change_group_access(actor, group, "name")
    if group.list_address:
        _check_removal(actor, group.list_address, "name", what="this list")
        _drop_as_target(group.list_address)
    audit("mail.group.remove", target=group, description="Removed group.", **_who(request, actor_label, actor))
    group.delete()
