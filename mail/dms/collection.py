"""The rows of mail's DMS files, read from the database (mail.dms.mail_files declares which file reads which),
and what DMS answers for on a domain, which the catch-all checks of mail.services.capture share with the files."""

import heapq
from collections.abc import Iterable, Iterator, Set
from itertools import groupby
from typing import cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.expressions import OrderBy
from django.db.models.functions import Collate, Length, Replace

from mail.addresses import normalize_address
from mail.dms.catalog import Reads
from mail.dms.render import DkimRows, VirtualRows, catch_all_domains
from mail.dms.snapshot import Account, dms_line_order
from mail.dms.snapshot import Alias as AliasEntry
from mail.dms.snapshot import DkimKey as DkimEntry
from mail.models import Alias, AliasTarget, DkimKey, Group, Mailbox

CHUNK = 2000


def _line_order(field: str) -> list[OrderBy]:
    """ORDER BY matching mail.dms.snapshot.dms_line_order: length, more dots first, then the bytes
    (collation C on PostgreSQL, whose default collation would ignore punctuation)."""
    text = Collate(field, "C") if connection.vendor == "postgresql" else F(field)
    dots = Length(field) - Length(Replace(field, Value("."), Value("")))
    return [Length(field).asc(), dots.desc(), text.asc()]


def _by_bytes(field: str) -> OrderBy:
    return Collate(field, "C").asc() if connection.vendor == "postgresql" else F(field).asc()


def _live_mailboxes() -> QuerySet[Mailbox]:
    """Mailboxes that get an account line: on an active domain, not disabled, with a hash."""
    return (
        Mailbox.objects.filter(domain__is_active=True)
        .exclude(state=Mailbox.DISABLED)
        .exclude(person__mail_password_hash="")
    )


def live_mailbox_exists() -> bool:
    """Whether DMS has at least one account line (without one it stops itself after ~120 s)."""
    return _live_mailboxes().exists()


def dms_accounts() -> Iterator[Account]:
    """Account lines in DMS line order, streamed."""
    rows = (
        _live_mailboxes()
        .values_list("address", "state", "quota", "person__mail_password_hash", "person__is_active")
        .order_by(*_line_order("address"))
        .iterator(chunk_size=CHUNK)
    )
    for address, state, quota, mail_hash, person_active in rows:
        # A person switched off in Dockspace (is_active unticked) is refused by mail too.
        blocked = state == Mailbox.SUSPENDED or not person_active
        yield Account(address=address, password_hash=mail_hash, is_suspended=blocked, quota_bytes=quota)


def dms_send_blocked() -> Iterator[str]:
    """Suspended mailboxes may not send (Dovecot already refuses their SMTP AUTH)."""
    qs = _live_mailboxes().filter(Q(state=Mailbox.SUSPENDED) | Q(person__is_active=False))
    return qs.values_list("address", flat=True).order_by(_by_bytes("address")).iterator(chunk_size=CHUNK)


def _refused_rows(dead: Set[str]) -> Iterator[str]:
    """Addresses with a row of their own that DMS refuses at SMTP time (so a catch-all cannot take
    their mail either): disabled mailboxes, aliases all of whose targets are gone, and lists without
    a member DMS delivers to (an empty list has no postfix-virtual.cf line)."""
    disabled = (
        Mailbox.objects.filter(domain__is_active=True, state=Mailbox.DISABLED)
        .values_list("address", flat=True)
        .order_by(_by_bytes("address"))
        .iterator(chunk_size=CHUNK)
    )
    return heapq.merge(disabled, sorted(set(_dead_aliases(dead)) | set(_empty_lists())))


def dms_receive_blocked(dead: Set[str]) -> Iterator[str]:
    """Refused at SMTP time: the rows DMS refuses (_refused_rows), and, on a domain with a catch-all,
    every sign-in address that has no line (sign_ins_without_line): a catch-all never takes a
    person's mail, whoever was created first."""
    return _distinct(heapq.merge(_refused_rows(dead), sorted(address for _pk, address in _caught_sign_ins(dead))))


def _distinct(sorted_items: Iterable[str]) -> Iterator[str]:
    previous = None
    for item in sorted_items:
        if item != previous:
            yield item
        previous = item


def _empty_lists() -> QuerySet[Group, str]:
    """List addresses on active domains without one member whose mailbox DMS has."""
    live_member = Group.members.through.objects.filter(group=OuterRef("pk"), user__mailbox__in=_live_mailboxes())
    lists = (
        Group.objects.filter(list_address__isnull=False, list_domain__is_active=True)
        .exclude(Exists(live_member))
        .values_list("list_address", flat=True)
    )
    return cast("QuerySet[Group, str]", lists)  # list_address__isnull=False


def dead_addresses() -> set[str]:
    """Addresses on managed domains that DMS no longer delivers to: forwarding there would accept
    mail at SMTP time and bounce it later (backscatter), or hand it to a catch-all. Few (what was
    switched off), so a set. An alias left with only dead targets is dead too, to any depth."""
    gone_mailboxes = Mailbox.objects.filter(Q(state=Mailbox.DISABLED) | Q(domain__is_active=False))
    gone_aliases = Alias.objects.filter(Q(is_active=False) | Q(domain__is_active=False))
    gone_lists = Group.objects.filter(list_address__isnull=False, list_domain__is_active=False)
    dead = (
        set(gone_mailboxes.values_list("address", flat=True))
        | set(gone_aliases.values_list("address", flat=True))
        | set(cast("QuerySet[Group, str]", gone_lists.values_list("list_address", flat=True)))  # isnull=False
        | set(_empty_lists())
    )
    while True:
        more = set(_dead_aliases(dead)) - dead
        if not more:
            return dead
        dead |= more


def _dead_aliases(dead: Set[str]) -> list[str]:
    """Active aliases every target of which is dead (only aliases pointing at a dead address can be)."""
    if not dead:
        return []
    candidates = (
        AliasTarget.objects.filter(
            address__in=dead, alias__is_active=True, alias__domain__is_active=True, alias__keep_copy=False
        )
        .values_list("alias_id", flat=True)
        .distinct()
    )
    targets: dict[tuple[int, str], list[str]] = {}
    for alias_id, address, target in AliasTarget.objects.filter(alias_id__in=candidates).values_list(
        "alias_id", "alias__address", "address"
    ):
        targets.setdefault((alias_id, address), []).append(target)
    return [address for (_id, address), found in targets.items() if all(t in dead for t in found)]


def _alias_entries(
    dead: Set[str], domain_name: str | None = None, *, catch_alls_only: bool = False
) -> Iterator[AliasEntry]:
    # Keep-a-copy aliases are few: the ones whose mailbox DMS has, as a set, not a subquery per row.
    copies = set(
        _live_mailboxes()
        .filter(address__in=Alias.objects.filter(keep_copy=True).values("address"))
        .values_list("address", flat=True)
    )
    rows = AliasTarget.objects.filter(alias__is_active=True, alias__domain__is_active=True)
    if domain_name is not None:
        rows = rows.filter(alias__domain__name=domain_name)
    if catch_alls_only:
        rows = rows.filter(alias__local_part="")
    lines = (
        rows.values_list("alias_id", "alias__address", "alias__keep_copy", "address")
        .order_by(*_line_order("alias__address"), "position")
        .iterator(chunk_size=CHUNK)
    )
    for (_alias_id, address, keep_copy), group in groupby(lines, key=lambda r: r[:3]):
        targets = [row[3] for row in group if row[3] not in dead]
        if keep_copy:
            if address not in copies:
                continue  # forwarding a mailbox that DMS does not have
            targets.append(address)
        if targets:  # an alias left with no target is refused at SMTP instead (dms_receive_blocked)
            yield AliasEntry(address=address, targets=tuple(targets))


def _list_entries(domain_name: str | None = None) -> Iterator[AliasEntry]:
    rows = Group.members.through.objects.filter(
        group__list_address__isnull=False, group__list_domain__is_active=True
    ).filter(user__mailbox__in=_live_mailboxes())
    if domain_name is not None:
        rows = rows.filter(group__list_domain__name=domain_name)
    lines = (
        rows.values_list("group_id", "group__list_address", "user__mailbox__address")
        .order_by(*_line_order("group__list_address"), _by_bytes("user__mailbox__address"))
        .iterator(chunk_size=CHUNK)
    )
    for (_group_id, list_address), group in groupby(lines, key=lambda r: r[:2]):
        # group__list_address__isnull=False above
        yield AliasEntry(address=cast(str, list_address), targets=tuple(row[2] for row in group))


def dms_aliases(dead: Set[str]) -> Iterator[AliasEntry]:
    """postfix-virtual.cf keys from aliases and lists, in DMS line order, streamed (catch-all
    identity lines are not included: mail.dms.render.virtual_entries adds them)."""
    return heapq.merge(_alias_entries(dead), _list_entries(), key=lambda entry: dms_line_order(entry.address))


def dms_catch_all_domains(dead: Set[str]) -> frozenset[str]:
    """The domains whose catch-all postfix-virtual.cf holds (one whose targets are all gone is refused instead)."""
    return catch_all_domains(_alias_entries(dead, catch_alls_only=True))


def dms_catch_all_accounts() -> Iterator[Account]:
    """Account lines (addresses only) on domains with an active catch-all, in DMS line order, streamed: a
    superset of those that get a catch-all identity line (mail.dms.render.virtual_entries decides which)."""
    catch_all = Alias.objects.filter(domain=OuterRef("domain"), local_part="", is_active=True)
    rows = (
        _live_mailboxes()
        .filter(Exists(catch_all))
        .values_list("address", flat=True)
        .order_by(*_line_order("address"))
        .iterator(chunk_size=CHUNK)
    )
    return (Account(address=address, password_hash="") for address in rows)


def answered_addresses(domain_name: str, dead: Set[str]) -> set[str]:
    """Addresses of the domain that DMS answers for themselves, so a catch-all never gets their mail:
    those with an account line or a postfix-virtual.cf line (the same queries the sync writes from),
    and the rows it refuses at SMTP time."""
    answered = set(_live_mailboxes().filter(domain__name=domain_name).values_list("address", flat=True))
    answered |= {entry.address for entry in _alias_entries(dead, domain_name)}
    answered |= {entry.address for entry in _list_entries(domain_name)}
    suffix = "@" + domain_name
    answered |= {address for address in _refused_rows(dead) if address.endswith(suffix)}
    return answered


def base_address(address: str) -> str:
    """'a+tag@d' -> 'a@d', any other address unchanged: DMS's recipient delimiter is '+', so Postfix
    delivers a+tag@d at a@d when a+tag@d has no line of its own."""
    local, _, domain = address.rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def _sign_ins(domains: Set[str]) -> Iterator[tuple[int, str]]:
    """(person id, normalised sign-in address) of everyone signing in on one of `domains`."""
    from accounts.models import User

    for pk, email in User.objects.values_list("pk", "email").iterator(chunk_size=CHUNK):
        try:
            address = normalize_address(email)
        except ValidationError:
            continue
        if address.rpartition("@")[2] in domains:
            yield pk, address


def sign_ins_without_line(domain_name: str, dead: Set[str] | None = None) -> list[tuple[int, str]]:
    """(person id, sign-in address) of the people signing in on this domain whose address DMS does not
    answer for itself, nor its part before '+' (where Postfix delivers local+tag@d): a catch-all on
    the domain would take their mail."""
    answered = answered_addresses(domain_name, dead_addresses() if dead is None else dead)
    return sorted(
        ((pk, address) for pk, address in _sign_ins({domain_name}) if not {address, base_address(address)} & answered),
        key=lambda row: row[1],
    )


def _caught_sign_ins(dead: Set[str]) -> list[tuple[int, str]]:
    """sign_ins_without_line for every domain with a catch-all in postfix-virtual.cf."""
    candidates = Alias.objects.filter(local_part="", is_active=True, domain__is_active=True)
    answered: dict[str, set[str]] = {}
    for domain in candidates.values_list("domain__name", flat=True):
        if "@" + domain not in dead:  # a catch-all whose targets are all gone is refused, not written
            answered[domain] = answered_addresses(domain, dead)
    if not answered:
        return []
    return [
        (pk, address)
        for pk, address in _sign_ins(set(answered))
        if not {address, base_address(address)} & answered[address.rpartition("@")[2]]
    ]


def dms_dkim_keys() -> tuple[DkimEntry, ...]:
    """The signing key of each active domain."""
    return tuple(
        DkimEntry(domain=d, selector=sel, algorithm=alg, bits=bits, private_key_pem=pem, public_key_b64=pub)
        for d, sel, alg, bits, pem, pub in DkimKey.objects.filter(state=DkimKey.ACTIVE, domain__is_active=True)
        .values_list("domain__name", "selector", "algorithm", "bits", "private_key_pem", "public_key_b64")
        .order_by("domain__name")
    )


# --- the rows of each file, as mail.dms.mail_files declares them: catalog.DmsFile.collect(reads) -----------


def _dead(reads: Reads) -> set[str]:
    return reads.once(dead_addresses)  # read once per sync, when first needed


def account_rows(reads: Reads) -> Iterator[Account]:
    return dms_accounts()


def virtual_rows(reads: Reads) -> VirtualRows:
    dead = _dead(reads)
    domains = dms_catch_all_domains(dead)
    return VirtualRows(dms_aliases(dead), dms_catch_all_accounts() if domains else (), domains)


def send_blocked_rows(reads: Reads) -> Iterator[str]:
    return dms_send_blocked()


def receive_blocked_rows(reads: Reads) -> Iterator[str]:
    return dms_receive_blocked(_dead(reads))


def dkim_rows(reads: Reads) -> DkimRows:
    return DkimRows(dms_dkim_keys(), settings.DKIM_LAYOUT)
