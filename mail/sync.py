"""Bring the DMS directory in line with the database: snapshot -> render -> write, and drift scans.

Requests for a sync are coalesced: any number of committed changes within DMS_SYNC_DELAY seconds
cause one sync, and a sync that finds the bytes on disk unchanged writes nothing.
"""

import functools
import hashlib
import logging
import os
import threading

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from mail import selectors
from mail.dms.render import (
    ACCOUNTS_PATH,
    HEADER,
    QUOTAS_PATH,
    RECEIVE_ACCESS_PATH,
    RSPAMD_SIGNING_CONF_PATH,
    SEND_ACCESS_PATH,
    VIRTUAL_PATH,
    file_mode,
    redact_line,
    render_dkim,
    render_files,
    stream_files,
)
from mail.dms.writer import dms_lock, write_files
from mail.models import DmsSyncState
from mail.progress import counting_dms_files
from mail.selectors import dms_snapshot

log = logging.getLogger(__name__)

QUEUED_KEY = "mail:dms-sync-queued"
SYNC_LOCK_NAME = "sync.lock"
DMS_FILES_HINT = (
    "Files: postfix-accounts.cf, postfix-virtual.cf, dovecot-quotas.cf, postfix-send-access.cf, "
    "postfix-receive-access.cf, and the DKIM files."
)
_local = threading.local()


def rendered_files():
    """Every file as bytes, rendered from a Snapshot (small installations, previews, tests)."""
    return render_files(dms_snapshot(dkim_layout=settings.DKIM_LAYOUT))


def streamed_files():
    """The same files for the writer, the big ones as producers of bytes chunks streamed from the
    database, so a sync's memory does not grow with the number of mailboxes and aliases."""
    dead = functools.cache(selectors.dead_addresses)  # read once per sync, when first needed
    files = stream_files(
        accounts=selectors.dms_accounts,
        aliases=lambda: selectors.dms_aliases(dead()),
        identity_lines=lambda: selectors.dms_identity_lines(dead()),
        send_blocked=selectors.dms_send_blocked,
        receive_blocked=lambda: selectors.dms_receive_blocked(dead()),
    )
    files.update(render_dkim(selectors.dms_dkim_keys(dkim_layout=settings.DKIM_LAYOUT), settings.DKIM_LAYOUT))
    return dict(sorted(files.items()))


def _write(files, *, root, dry_run=False):
    return write_files(
        root,
        files,
        history_dir=settings.DMS_HISTORY_DIR,
        keep=settings.DMS_HISTORY_KEEP,
        file_mode=file_mode,
        dry_run=dry_run,
        redact=redact_line,
    )


class ForeignFiles(Exception):
    """The DMS directory holds account files Dockspace did not write: replacing them would lose them."""


# The files whose loss would lose data, checked before Dockspace first replaces them.
_GUARDED = (ACCOUNTS_PATH, VIRTUAL_PATH, QUOTAS_PATH, SEND_ACCESS_PATH, RECEIVE_ACCESS_PATH, RSPAMD_SIGNING_CONF_PATH)


def foreign_files(root):
    """{path: number of data lines} of guarded files that exist, do not start with Dockspace's
    header and hold anything but comments: an existing DMS setup that has not been adopted."""
    found = {}
    for path in _GUARDED:
        try:
            with open(os.path.join(root, path), "rb") as f:
                first = f.readline()
                if first.decode("utf-8", "replace") == HEADER:
                    continue
                count = sum(1 for line in [first, *f] if line.strip() and not line.lstrip().startswith(b"#"))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        if count:
            found[path] = count
    return found


def _refuse_foreign(root):
    found = foreign_files(root)
    if found:
        listing = ", ".join(f"{path} ({n} lines)" for path, n in found.items())
        raise ForeignFiles(
            f"{root} holds files Dockspace did not write: {listing}. Nothing was replaced. Adopt them first "
            f"with `manage.py import_dms_files --from {root}`, then let Dockspace take over with "
            "`manage.py export_dms_files --force` (or use --force alone to discard them)."
        )


def dms_sync(*, dry_run=False, force=False, progress=None):
    """Write what changed. Records the outcome on DmsSyncState; raises the writer's errors, and
    ForeignFiles (writing nothing) while the directory holds an existing DMS setup not yet adopted.

    One sync at a time, from reading the database to the last rename, so an older picture of the
    data can never overwrite a newer one."""
    state = DmsSyncState.load()
    state.last_attempt_at = timezone.now()
    try:
        with dms_lock(settings.DMS_HISTORY_DIR / SYNC_LOCK_NAME, timeout=120):
            if not force:
                _refuse_foreign(settings.DMS_DIR)
            with counting_dms_files(streamed_files(), progress) as files:
                report = _write(files, root=settings.DMS_DIR, dry_run=dry_run)
    except Exception as e:
        if not dry_run:
            state.last_error = f"{type(e).__name__}: {e}"[:2000]
            state.save(update_fields=["last_attempt_at", "last_error"])
        raise
    if not dry_run:
        state.last_success_at = state.last_attempt_at
        state.last_error = ""
        # Every file now holds what the database says: whatever drift a scan found is repaired.
        state.drift_found_at = None
        state.drift_report = ""
        state.checksums = report.checksums
        if report.changed or report.removed:
            state.last_changed = sorted(report.changed + report.removed)
            state.write_count += len(report.changed) + len(report.removed)
        if any(p.startswith("opendkim/") for p in report.changed + report.removed):
            state.restart_needed = True
            state.restart_reason = (
                "OpenDKIM keys or tables changed: DMS reads them only at start. Restart the mailserver container."
            )
        state.save()
    return report


def dms_scan(*, repair):
    """Compare the files on disk with what the database says. Returns {path: unified diff} of the
    drift found; repairs it (rewrites those files) when asked."""
    report = _write(streamed_files(), root=settings.DMS_DIR, dry_run=True)
    drift = dict(report.diffs)
    state = DmsSyncState.load()
    if drift:
        state.drift_found_at = timezone.now()
        state.drift_report = "\n".join(drift.values())[:20000]
        state.save(update_fields=["drift_found_at", "drift_report"])
        if repair:
            dms_sync()
    elif state.drift_report:
        state.drift_report = ""
        state.save(update_fields=["drift_report"])
    return drift


def export_files(output_dir, *, dry_run=False, force=False, progress=None):
    """Write the files somewhere else (to inspect or seed a new server). Each output directory has
    its own history and manifest, so an export only ever removes files it wrote there itself."""
    if not force and not dry_run:
        _refuse_foreign(output_dir)
    real = os.path.realpath(output_dir)
    key = hashlib.sha256(real.encode()).hexdigest()[:16]
    with counting_dms_files(streamed_files(), progress) as files:
        return write_files(
            output_dir,
            files,
            history_dir=settings.DATA_DIR / "dms-export-history" / key,
            keep=settings.DMS_HISTORY_KEEP,
            file_mode=file_mode,
            dry_run=dry_run,
            redact=redact_line,
        )


def mailbox_exists():
    return selectors.live_mailbox_exists()


# --- coalescing ----------------------------------------------------------------------------------


def _on_commit():
    """Runs after the change committed: whatever goes wrong here (cache or broker down) must not
    turn a saved change into an error. The periodic repair catches up within minutes."""
    _local.pending_in = None
    try:
        if cache.add(QUEUED_KEY, 1, timeout=max(30, settings.DMS_SYNC_DELAY * 10)):
            from mail.tasks import sync_dms_files

            try:
                sync_dms_files.apply_async(countdown=settings.DMS_SYNC_DELAY)
            except Exception:
                cache.delete(QUEUED_KEY)
                raise
    except Exception:
        log.exception("could not queue a DMS sync; the periodic repair will write the files")


def request_sync():
    """Schedule one DMS sync after the current transaction commits (once per transaction).

    Django replaces its list of pending callbacks when a transaction (or the savepoint that
    registered ours) ends, so "our callback is pending in this list" survives rollbacks correctly.
    """
    if not connection.in_atomic_block:
        _on_commit()
        return
    if getattr(_local, "pending_in", None) is connection.run_on_commit:
        return
    _local.pending_in = connection.run_on_commit
    transaction.on_commit(_on_commit)


def sync_started():
    """Called by the task before it reads the database, so changes committed during the sync queue another."""
    cache.delete(QUEUED_KEY)
