"""Celery tasks for mail: thin, idempotent; the work is in mail.sync."""

from celery import shared_task

from mail import sync
from mail.dms.writer import LockTimeout, WriteError


@shared_task(
    name="mail.sync_dms_files", autoretry_for=(WriteError, LockTimeout, OSError), retry_backoff=True, max_retries=8
)
def sync_dms_files():
    sync.sync_started()
    try:
        report = sync.dms_sync()
    except sync.ForeignFiles as e:
        # Waiting for an operator to adopt the existing DMS files: retrying would not help, and the
        # reason is on DmsSyncState for the admin.
        return f"refused: {e}"
    return f"wrote {len(report.changed)} file(s), removed {len(report.removed)}, {len(report.unchanged)} unchanged"


@shared_task(
    name="mail.repair_dms_drift", autoretry_for=(WriteError, LockTimeout, OSError), retry_backoff=True, max_retries=3
)
def repair_dms_drift():
    try:
        drift = sync.dms_scan(repair=True)
    except sync.ForeignFiles as e:
        return f"refused: {e}"
    return f"repaired drift in {len(drift)} file(s)" if drift else "no drift"
