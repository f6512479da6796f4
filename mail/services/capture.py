"""Where mail for an address goes and whom it reaches: what already uses an address, who signs in as it, what
flows into it, and the check that refuses a change sending a person's mail where the actor may not (shared by the
mailbox, alias and group services)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from accounts import authz
from dockspace.validation import field_error
from mail.addresses import normalize_address, split_address
from mail.dms.collection import answered_addresses, base_address, dead_addresses, sign_ins_without_line
from mail.models import Alias, AliasTarget, Group, Mailbox

if TYPE_CHECKING:
    from accounts.models import User
else:
    User = get_user_model()


def address_owner(address: str) -> str | None:
    """What already uses this address: 'a mailbox', 'an alias', 'a list' or None."""
    if Mailbox.objects.filter(address=address).exists():
        return "a mailbox"
    if Alias.objects.filter(address=address).exists():
        return "an alias"
    if Group.objects.filter(list_address=address).exists():
        return "a list"
    return None


_IN_CHUNK = 500  # values per `IN (...)`: SQLite allows 999 parameters per query in older builds


def address_owners(addresses: Iterable[str]) -> dict[str, str]:
    """address_owner for many addresses in a few queries: {address: 'a mailbox' | 'an alias' | 'a list'}
    for those already in use."""
    addresses = list(dict.fromkeys(addresses))
    owners: dict[str, str] = {}
    for owner, model, field in (
        ("a list", Group, "list_address"),
        ("an alias", Alias, "address"),
        ("a mailbox", Mailbox, "address"),  # last, so it wins as in address_owner
    ):
        for start in range(0, len(addresses), _IN_CHUNK):
            chunk = addresses[start : start + _IN_CHUNK]
            owners.update(
                dict.fromkeys(model.objects.filter(**{f"{field}__in": chunk}).values_list(field, flat=True), owner)
            )
    return owners


def _normalized_or_none(email: str) -> str | None:
    try:
        return normalize_address(email)
    except ValidationError:
        return None


def people_signing_in_as(address: str, *, subaddresses: bool = False) -> list[User]:
    """People whose sign-in address is `address` once normalised like a mailbox address (so
    'root@example.com.' and 'root@ｅxample.com' are found under 'root@example.com'). With
    subaddresses, also those signing in as local+tag@domain: DMS delivers their mail at `address`
    unless local+tag@domain has a line of its own. Exact matches first."""
    local, _ = split_address(address)
    candidates = User.objects.filter(email__istartswith=local + "@")
    if subaddresses and "+" not in local:
        candidates = User.objects.filter(Q(email__istartswith=local + "@") | Q(email__istartswith=local + "+"))
    exact: list[User] = []
    tagged: list[User] = []
    for person in candidates.order_by("email"):
        normalized = _normalized_or_none(person.email)
        if normalized == address:
            exact.append(person)
        elif subaddresses and normalized and base_address(normalized) == address and not _answered(normalized):
            tagged.append(person)
    return exact + tagged


def _answered(address: str) -> bool:
    """Whether DMS answers for `address` itself (an account line, a live postfix-virtual.cf line, or a refusal at
    SMTP time), so Postfix does not deliver it at the part before '+'. A switched-off alias writes no line."""
    _local, domain_name = split_address(address)
    return address in answered_addresses(domain_name, dead_addresses())


def people_signing_in_as_many(addresses: Iterable[str]) -> dict[str, list[User]]:
    """people_signing_in_as for many addresses with one pass over the sign-in addresses: {address: [people]}
    for those that are someone's sign-in. Only addresses whose part before '@' matches (in lower case, as
    the normalisation does) are normalised, so the pass stays cheap on a large table."""
    wanted = set(addresses)
    locals_ = {split_address(address)[0] for address in wanted}
    ids: dict[str, list[int]] = {}
    for pk, email in User.objects.values_list("pk", "email").iterator(chunk_size=5000):
        if email.lower().partition("@")[0] in locals_:
            address = _normalized_or_none(email)
            if address in wanted:
                ids.setdefault(address, []).append(pk)
    people = User.objects.in_bulk([pk for pks in ids.values() for pk in pks])
    return {address: [people[pk] for pk in pks] for address, pks in ids.items()}


def _people_caught_by_catch_all(domain_name: str) -> QuerySet[User]:
    """People whose sign-in address on this domain DMS does not deliver (no account line or
    postfix-virtual.cf line for it, nor for its part before '+'): a catch-all gets their mail."""
    return User.objects.filter(pk__in=[pk for pk, _address in sign_ins_without_line(domain_name)]).order_by("email")


def upstream_addresses(address: str) -> list[str]:
    """`address` and every address whose mail flows into it through aliases (switched-off ones too:
    switching one back on must not reveal a target re-pointed meanwhile) and lists, nearest first.
    A target local+tag@d flows into local@d, where DMS delivers it. One query per address reached:
    few, unlike the whole forwarding graph."""
    found, seen, todo = [address], {address}, [address]
    while todo:
        current = todo.pop(0)
        local, domain = split_address(current)
        tagged = Q(address__startswith=local + "+", address__endswith="@" + domain) if local else Q(pk__in=[])
        sources = set(
            AliasTarget.objects.filter(Q(address=current) | tagged)
            .exclude(alias__address=current)
            .values_list("alias__address", flat=True)
        )
        lists = Group.objects.filter(members__mailbox__address=current, list_address__isnull=False).values_list(
            "list_address", flat=True
        )
        sources |= set(cast("QuerySet[Group, str]", lists))  # list_address__isnull=False
        for source in sorted(sources - seen):
            seen.add(source)
            found.append(source)
            todo.append(source)
    return found


def _people_whose_mail_reaches(address: str) -> list[tuple[str, User]]:
    """(address their mail is for, person) for everyone whose mail ends up where `address` sends it:
    people signing in as it or as anything flowing into it, and the owners of mailboxes among those
    (a mailbox flows on only through its own 'keep a copy' alias). A catch-all: the people it catches."""
    local, domain_name = split_address(address)
    if not local:
        return [(person.email, person) for person in _people_caught_by_catch_all(domain_name)]
    found: list[tuple[str, User]] = []
    for upstream in upstream_addresses(address):
        found.extend((upstream, person) for person in people_signing_in_as(upstream, subaddresses=True))
        mailbox = Mailbox.objects.select_related("person").filter(address=upstream).first()
        if mailbox is not None:
            found.append((upstream, mailbox.person))
    return found


def _check_capture(
    actor: authz.Actor,
    address: str,
    field: str = "address",
    *,
    catcher: str | None = None,
    removal: bool = False,
    owner: User | None = None,
) -> None:
    """Refuse a change to where mail for `address` goes (an alias, catch-all, list address, list
    members, kept copy, or removal) if mail meant for a person the actor may not manage (reset links
    included) flows through it: sent to their sign-in address or mailbox, directly or through other
    aliases and lists. removal: `address` goes away; `owner`, the owner of the mailbox removed, whom the
    caller has checked already. Everyone else whose mail reaches `address` counts, those signing in as
    `address` itself (or as a `+` form of it that DMS delivers there) included."""
    if authz.is_system(actor):
        return
    for via, person in _people_whose_mail_reaches(address):
        if owner is not None and via == address and person.pk == owner.pk:
            continue
        if not authz.may_manage_person(actor, person):
            through = "" if via in (address, person.email) else f" (through {via})"
            if removal:
                text = f"removing {address} changes where mail meant for {person.email}{through} goes"
            else:
                text = f"{catcher or address} would receive mail meant for {person.email}{through}"
            raise field_error(field, f"{text}; {authz.refusal(person)}")


def _check_removal(
    actor: authz.Actor, address: str, field: str = "address", *, what: str = "this alias", owner: User | None = None
) -> None:
    """`address` goes away: mail for it and for what flowed into it loses that target (refused for a person
    the actor may not manage), and on a domain with a catch-all its own mail would fall to the catch-all.
    owner: the owner of a mailbox removed, checked by the caller."""
    local, domain_name = split_address(address)
    if local and Alias.objects.filter(address="@" + domain_name, is_active=True).exists():
        _check_capture(actor, address, field, catcher=f"without {what}, the catch-all @{domain_name}")
    _check_capture(actor, address, field, removal=True, owner=owner)
