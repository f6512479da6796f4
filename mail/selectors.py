"""Reads that span relations: what a person's profile shows about mail, and how the DMS files stand (for
monitoring's alerts). (The rows of the DMS files are read in mail.dms.collection.)"""

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import QuerySet

from accounts.models import User
from mail.models import Alias, DmsPendingChange, DmsSyncState, Group, Mailbox

if TYPE_CHECKING:
    from accounts import authz


@dataclass(frozen=True)
class DmsSyncStatus:
    """How the DMS files stand, as DmsSyncState and the pending changes record it (mail.dms.sync writes both).

    last_error: the last write failed with it ("" once a write succeeds). oldest_pending_at: the oldest committed
    change the files may not show yet (None: up to date). drift_found_at / has_drift: a scan found files that
    differ from the database and they are not repaired yet (a successful repair clears both). restart_needed /
    restart_reason: a sync wrote files DMS reads only in a new container, and nobody said it was recreated since."""

    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str
    oldest_pending_at: datetime | None
    pending_count: int
    drift_found_at: datetime | None
    has_drift: bool
    restart_needed: bool = False
    restart_reason: str = ""


def dms_sync_status() -> DmsSyncStatus:
    """Reads only: a database that never synced has no state row yet, and none is created here."""
    state = DmsSyncState.objects.filter(pk=1).first()
    pending = DmsPendingChange.objects.order_by("created_at", "pk")
    oldest = pending.values_list("created_at", flat=True).first()
    return DmsSyncStatus(
        last_success_at=state.last_success_at if state else None,
        last_attempt_at=state.last_attempt_at if state else None,
        last_error=state.last_error if state else "",
        oldest_pending_at=oldest,
        pending_count=pending.count() if oldest is not None else 0,
        drift_found_at=state.drift_found_at if state else None,
        has_drift=bool(state and state.drift_report),
        restart_needed=bool(state and state.restart_needed),
        restart_reason=state.restart_reason if state else "",
    )


def mail_overview(person: User) -> dict[str, Any] | None:
    """What the profile page shows: the person's mailbox, and every active alias and list that
    reaches it, directly or through other aliases and lists."""
    from mail.quota import humanize_quota
    from mail.quota_usage import mailbox_usage

    mailbox = Mailbox.objects.filter(person=person).select_related("domain").first()
    if mailbox is None:
        return None
    alias_ids, list_ids = _reaching(mailbox.address)
    return {
        "mailbox": mailbox,
        "quota_text": humanize_quota(mailbox.quota),
        "quota_use": mailbox_usage([mailbox.address]).get(mailbox.address),  # None: not measured (yet)
        "aliases": list(Alias.objects.filter(pk__in=alias_ids).order_by("address")),
        "lists": list(Group.objects.filter(pk__in=list_ids).order_by("list_address")),
        "groups": list(person.member_groups.order_by("name")),
    }


def _reaching(address: str) -> tuple[set[int], set[int]]:
    """Walk the forwarding graph backwards from an address: (alias ids, group ids) whose mail ends there."""
    alias_ids: set[int] = set()
    list_ids: set[int] = set()
    # list_address is NULL-able in the model, never NULL here (list_address__isnull=False).
    seen: set[str | None] = {address}
    todo: list[str | None] = [address]
    while todo:
        current = todo.pop()
        for alias_id, alias_address in Alias.objects.filter(
            targets__address=current, is_active=True, domain__is_active=True
        ).values_list("id", "address"):
            if alias_address == current:
                continue  # keep-a-copy on the mailbox itself
            alias_ids.add(alias_id)
            if alias_address not in seen:
                seen.add(alias_address)
                todo.append(alias_address)
        for group_id, list_address in Group.objects.filter(
            members__mailbox__address=current, list_address__isnull=False, list_domain__is_active=True
        ).values_list("id", "list_address"):
            list_ids.add(group_id)
            if list_address not in seen:
                seen.add(list_address)
                todo.append(list_address)
    return alias_ids, list_ids


def _require_view(actor: "authz.Actor | None", model: type[models.Model], field: str) -> None:
    """Refused (ValidationError, like a service) unless `actor` may view `model`'s rows as the admin lets them:
    with its view or its change permission."""
    from accounts.authz import require_perm

    opts = model._meta
    change = f"{opts.app_label}.change_{opts.model_name}"
    if actor is not None and actor.has_perm(change):
        return
    require_perm(actor, f"{opts.app_label}.view_{opts.model_name}", field)


def mailboxes_for(actor: "authz.Actor | None", *, field: str = "__all__") -> "QuerySet[Mailbox]":
    """The mailboxes `actor` may see: all of them with the permission to view (or change) mailboxes; refused
    without it, so a command says why instead of listing nothing."""
    _require_view(actor, Mailbox, field)
    return Mailbox.objects.select_related("person", "domain").order_by("address")


def aliases_for(actor: "authz.Actor | None", *, field: str = "__all__") -> "QuerySet[Alias]":
    """The aliases `actor` may see (the permission to view or change aliases), refused without it."""
    _require_view(actor, Alias, field)
    return Alias.objects.prefetch_related("targets").order_by("address")


def groups_for(actor: "authz.Actor | None", *, field: str = "__all__") -> "QuerySet[Group]":
    """The groups `actor` may see (the permission to view or change groups), refused without it."""
    _require_view(actor, Group, field)
    return Group.objects.prefetch_related("members").order_by("name")
