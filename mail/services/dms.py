"""The DMS sync state as operators change it: saying the mailserver container was recreated by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from accounts import authz
from accounts.audit import audit
from mail.dms import sync
from mail.models import DmsSyncState
from mail.services.actor import _who

if TYPE_CHECKING:
    from django.http import HttpRequest

CHANGE_SYNC_STATE = "mail.change_dmssyncstate"


@transaction.atomic
def dms_restart_done(
    *,
    request: HttpRequest | None = None,
    actor: authz.Actor | None = None,
    actor_label: str | None = None,
) -> DmsSyncState:
    """The mailserver container was recreated outside Dockspace (`docker compose up -d --force-recreate`): clear
    "restart needed" and, after commit, tell the apps above (mail.dms.sync.restart_done; monitoring clears its
    mail hosts' flags). Needs the permission to change the DMS sync state."""
    actor = authz.acting(request=request, actor=actor)
    authz.require_perm(actor, CHANGE_SYNC_STATE)
    state = DmsSyncState.load()
    was = state.restart_reason
    DmsSyncState.objects.filter(pk=state.pk).update(restart_needed=False, restart_reason="")
    state.restart_needed, state.restart_reason = False, ""
    audit(
        "mail.dms.restarted",
        target=state,
        description="Marked the mailserver container as recreated"
        + (f" (was: {was})." if was else " (no restart was pending)."),
        **_who(request, actor_label, actor),
    )
    transaction.on_commit(lambda: sync.restart_done.send_robust(sender=DmsSyncState))
    return state
