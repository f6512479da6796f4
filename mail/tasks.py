"""Celery tasks for mail: thin, idempotent; the work is in mail.dms.sync."""

from celery import shared_task

from mail.dms import sync
from mail.dms.writer import LockTimeout, WriteError


@shared_task(
    name="mail.sync_dms_files", autoretry_for=(WriteError, LockTimeout, OSError), retry_backoff=True, max_retries=8
)
def sync_dms_files():
    """Write the DMS files if they are behind the database (the pending changes say so, durably)."""
    sync.sync_started()
    try:
        report = sync.catch_up()
    except sync.ForeignFiles as e:
        # Waiting for an operator to adopt the existing DMS files: retrying would not help, and the
        # reason is on DmsSyncState for the admin.
        return f"refused: {e}"
    if report is None:
        return "up to date"
    summary = f"wrote {len(report.changed)} file(s), removed {len(report.removed)}, {len(report.unchanged)} unchanged"
    return summary + (f", left out {len(report.skipped)} value(s)" if report.skipped else "")


@shared_task(
    name="mail.repair_dms_drift",
    is_periodic=True,
    autoretry_for=(WriteError, LockTimeout, OSError),
    retry_backoff=True,
    max_retries=3,
)
def repair_dms_drift():
    """The periodic check: catches up pending changes (a lost task), then repairs hand edits."""
    try:
        drift = sync.dms_scan(repair=True)
    except sync.ForeignFiles as e:
        return f"refused: {e}"
    return f"repaired drift in {len(drift)} file(s)" if drift else "no drift"
