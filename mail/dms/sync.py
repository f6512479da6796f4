"""Bring the DMS directory in line with the database: snapshot -> render -> write, and drift scans.

"The files are behind the database" is durable: every transaction that changes mail state inserts a
DmsPendingChange row, and only a successful sync that read the database after it deletes it. The
queued task is only a wake-up call: if it is lost (a worker killed while holding it), the next
change, the next worker start and the periodic check each find the rows and catch up.

A lone change is written at once; while changes keep coming, at most one sync starts every
DMS_SYNC_DELAY seconds (they are coalesced), and a sync that finds the bytes on disk unchanged
writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from mail.dms import catalog, collection
from mail.dms.writer import dms_lock, roll_forward, write_files
from mail.models import DmsPendingChange, DmsSyncState
from mail.progress import counting_dms_files

if TYPE_CHECKING:
    from celery import Task

    from mail.dms.catalog import OnSkip
    from mail.dms.files import ContentProducer
    from mail.dms.writer import WriteReport
    from mail.progress import ProgressFactory

log = logging.getLogger(__name__)

QUEUED_KEY = "mail:dms-sync-queued"
LAST_START_KEY = "mail:dms-sync-last-start"
SYNC_LOCK_NAME = "sync.lock"
_local = threading.local()

# Declared seams for apps above mail (monitoring counts them for Prometheus and flags its mail hosts); sent with
# send_robust, so a receiver that fails never fails a sync. sync_finished: after every sync of the DMS directory that
# was not a dry run, with outcome ("success" or "failure") and duration_seconds (from taking the lock to the last
# rename; None when the lock was never taken). drift_found: a scan found files that differ from the database, with
# files (how many). restart_needed: a sync wrote files that DMS reads only at start (OpenDKIM's), with reason.
# restart_done: an operator said the mailserver container was recreated by hand (mail.services.dms_restart_done),
# so nothing waits for a new container any more.
sync_finished = Signal()
drift_found = Signal()
restart_needed = Signal()
restart_done = Signal()


def rendered_files() -> dict[str, bytes]:
    """Every declared file as bytes, rendered from the catalog's snapshot of the database (previews, tests)."""
    return catalog.render_snapshot(catalog.collected())


def streamed_files(
    *, on_skip: OnSkip = None, declared: Sequence[catalog.Declaration] | None = None
) -> dict[str, bytes | ContentProducer]:
    """The same files for the writer, each as a producer of bytes chunks streamed from the database (a set
    of files such as the DKIM ones as bytes), so a sync's memory does not grow with the number of mailboxes
    and aliases. Sorted by path, so postfix-accounts.cf is replaced before postfix-virtual.cf names a new
    mailbox. on_skip(message): a value that cannot be written is reported there and left out (without it,
    raised)."""
    declared = catalog.declared_files() if declared is None else declared
    return catalog.render(declared, catalog.database_rows(catalog.Reads()), on_skip)


def _write(
    files: Mapping[str, bytes | ContentProducer],
    *,
    root: str | os.PathLike[str],
    history_dir: Path | None = None,
    dry_run: bool = False,
) -> WriteReport:
    return write_files(
        root,
        files,
        history_dir=history_dir or settings.DMS_HISTORY_DIR,
        keep=settings.DMS_HISTORY_KEEP,
        file_mode=catalog.file_mode,
        dry_run=dry_run,
        redact=catalog.redact_line,
        is_secret=catalog.is_secret,
    )


class ForeignFiles(Exception):
    """The DMS directory holds account files Dockspace did not write: replacing them would lose them."""


def foreign_files(root: str | os.PathLike[str]) -> dict[str, int]:
    """{path: number of data lines} of the guarded files (catalog: the files whose loss would lose data) that
    exist, do not start with Dockspace's header and hold anything but comments: an existing DMS setup that
    has not been adopted."""
    found = {}
    for path in catalog.guarded_paths():
        try:
            with open(os.path.join(root, path), "rb") as f:
                first = f.readline()
                if first.decode("utf-8", "replace") == catalog.header_of(path):
                    continue
                count = sum(1 for line in [first, *f] if line.strip() and not line.lstrip().startswith(b"#"))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        if count:
            found[path] = count
    return found


def _refuse_foreign(root: str | os.PathLike[str], found: dict[str, int] | None = None) -> None:
    found = foreign_files(root) if found is None else found
    if found:
        listing = ", ".join(f"{path} ({n} lines)" for path, n in found.items())
        raise ForeignFiles(
            f"{root} holds files Dockspace did not write: {listing}. Nothing was replaced. Adopt them first "
            f"with `manage.py import_dms_files --from {root}`, then let Dockspace take over with "
            "`manage.py export_dms_files --force` (or use --force alone to discard them)."
        )


def _left_alone(root: str | os.PathLike[str], force: bool) -> tuple[Sequence[catalog.Declaration], list[str]]:
    """The declarations this sync writes, and why it leaves the others alone. Another app's guarded file that
    holds lines Dockspace did not write is left alone (the writer never removes a top-level file), so it
    never holds back mail's accounts and access blocks. Raises ForeignFiles (writing nothing) when a file of
    mail's, or one the writer could not leave standing, is foreign: an existing DMS setup not yet adopted.
    Returns (declarations to write, messages for the skipped report)."""
    declared = catalog.declared_files()
    if force:
        return declared, []
    found = foreign_files(root)
    standing = {path for path in found if _may_stand_aside(catalog.declared_for(path), path)}
    _refuse_foreign(root, {path: n for path, n in found.items() if path not in standing})
    notes = [_left_alone_note(path, found[path]) for path in sorted(standing)]
    return tuple(item for item in declared if not any(item.owns(path) for path in standing)), notes


def _left_alone_note(path: str, lines: int) -> str:
    """Why a file is not written and what the operator can do: the line the sync state, the scan and the export
    show."""
    declared = catalog.declared_for(path)
    fate = getattr(declared, "foreign_lines", "") or (
        "enter what they do in Dockspace first, or they are lost (import_dms_files adopts mail's files only)"
    )
    return (
        f"{path}: left alone (not written): it holds {lines} line(s) Dockspace did not write, and Dockspace writes "
        f"this file whole. `manage.py export_dms_files --force` adopts it, replacing those lines: {fate}"
    )


def files_left_alone(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Why each file that a sync would leave alone (another app's file holding lines Dockspace did not write) is
    not written, and what the operator can do; [] when none is, or when mail's own files are not adopted yet (the
    sync then refuses to write anything: ForeignFiles)."""
    try:
        return _left_alone(settings.DMS_DIR if root is None else root, force=False)[1]
    except ForeignFiles:
        return []


def _absent_inert_files(root: str | os.PathLike[str], declared: Sequence[catalog.Declaration]) -> set[str]:
    """The files declared with `inert` that do not exist yet (see _created_inert)."""
    return {
        item.path
        for item in declared
        if isinstance(item, catalog.DmsFile) and item.inert and not os.path.lexists(os.path.join(root, item.path))
    }


def _created_inert(root: str | os.PathLike[str], path: str, absent: set[str]) -> bool:
    """A file this sync created whose text changes nothing DMS does (its declaration's inert(text)): no restart."""
    if path not in absent:
        return False
    declared = catalog.declared_for(path)
    inert = getattr(declared, "inert", None)
    try:
        text = Path(root, path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return bool(inert and inert(text))


def _may_stand_aside(declared: catalog.Declaration | None, path: str) -> bool:
    return (
        isinstance(declared, catalog.DmsFile)
        and declared.app_label != "mail"
        and "/" not in path  # the writer never removes a top-level file (a *.cf file, user-patches.sh)
    )


def dms_sync(*, dry_run: bool = False, force: bool = False, progress: ProgressFactory | None = None) -> WriteReport:
    """Write what changed. Records the outcome on DmsSyncState; raises the writer's errors, and
    ForeignFiles (writing nothing) while the directory holds an existing DMS setup not yet adopted.
    Another app's file that holds lines Dockspace did not write is left alone with that app's other files
    and reported on DmsSyncState.skipped, so it never holds back mail's accounts and access blocks.
    A value that cannot be written (e.g. a DKIM selector with a line break stored by hand) is left
    out and reported on DmsSyncState.skipped; everything else is written.

    One sync at a time, from reading the database to the last rename, so an older picture of the
    data can never overwrite a newer one. The pending changes are read before the data and only
    those are cleared afterwards: a change committed during the write keeps the files behind."""
    state = DmsSyncState.load()
    state.last_attempt_at = timezone.now()
    skipped: list[str] = []
    locked_at: float | None = None
    try:
        with dms_lock(settings.DMS_HISTORY_DIR / SYNC_LOCK_NAME, timeout=120):
            locked_at = time.monotonic()
            if not dry_run:
                roll_forward(settings.DMS_HISTORY_DIR)  # a killed write is finished before anything else
            declared, left_alone = _left_alone(settings.DMS_DIR, force)
            skipped.extend(left_alone)
            seen = list(DmsPendingChange.objects.values_list("pk", flat=True))
            absent = _absent_inert_files(settings.DMS_DIR, declared)
            with counting_dms_files(streamed_files(on_skip=skipped.append, declared=declared), progress) as files:
                report = _write(files, root=settings.DMS_DIR, dry_run=dry_run)
    except Exception as e:
        if not dry_run:
            state.last_error = f"{type(e).__name__}: {e}"[:2000]
            state.save(update_fields=["last_attempt_at", "last_error"])
            _send_finished("failure", locked_at)
        raise
    written_at = time.monotonic()
    report.skipped = skipped = list(dict.fromkeys(skipped))  # accounts and quotas report the same account
    if not dry_run:
        _clear_pending(seen)
        state.last_success_at = state.last_attempt_at
        state.last_error = ""
        # Every file now holds what the database says: whatever drift a scan found is repaired.
        state.drift_found_at = None
        state.drift_report = ""
        state.skipped = "\n".join(skipped)[:20000]
        if skipped:
            log.warning("DMS sync left out %d value(s) that cannot be written: %s", len(skipped), "; ".join(skipped))
        state.checksums = report.checksums
        if report.changed or report.removed:
            state.last_changed = sorted(report.changed + report.removed)
            state.write_count += len(report.changed) + len(report.removed)
        restart = catalog.restart_reason(
            path for path in report.changed + report.removed if not _created_inert(settings.DMS_DIR, path, absent)
        )
        if restart:
            state.restart_needed = True
            state.restart_reason = restart
        state.save()
        if restart:
            restart_needed.send_robust(sender=DmsSyncState, reason=restart)
        _send_finished("success", locked_at, written_at)
    return report


def _send_finished(outcome: str, locked_at: float | None, ended_at: float | None = None) -> None:
    ended_at = time.monotonic() if ended_at is None else ended_at
    duration = None if locked_at is None else ended_at - locked_at
    sync_finished.send_robust(sender=None, outcome=outcome, duration_seconds=duration)


def _clear_pending(seen: list[int]) -> None:
    for start in range(0, len(seen), 500):
        DmsPendingChange.objects.filter(pk__in=seen[start : start + 500]).delete()
    # A sync run inside the transaction that recorded a change (a command, a test) may have cleared its
    # row: the next change of that transaction must record itself again.
    _local.pending_in = None


def is_behind() -> bool:
    """Whether a committed change may not be in the DMS files yet."""
    return DmsPendingChange.objects.exists()


def catch_up() -> WriteReport | None:
    """Finish a write a killed process left half done, then sync if the files are behind. The report,
    or None when there was nothing to write."""
    roll_forward(settings.DMS_HISTORY_DIR)
    if not is_behind():
        return None
    _note_sync_start()
    return dms_sync()


def dms_scan(*, repair: bool) -> dict[str, str]:
    """Compare the files on disk with what the database says. Returns {path: unified diff} of the
    drift found; repairs it (rewrites those files) when asked."""
    if repair:
        catch_up()  # what is merely behind is not drift
    try:
        declared, _notes = _left_alone(settings.DMS_DIR, force=False)  # a file left alone is not drift
    except ForeignFiles:
        declared = catalog.declared_files()
    report = _write(
        streamed_files(on_skip=lambda _message: None, declared=declared), root=settings.DMS_DIR, dry_run=True
    )
    drift = dict(report.diffs)
    state = DmsSyncState.load()
    if drift:
        drift_found.send_robust(sender=None, files=len(drift))
        state.drift_found_at = timezone.now()
        state.drift_report = "\n".join(drift.values())[:20000]
        state.save(update_fields=["drift_found_at", "drift_report"])
        if repair:
            dms_sync()
            state.drift_report = ""  # repaired: the page no longer says drift was found
            state.save(update_fields=["drift_report"])
    elif state.drift_report:
        state.drift_report = ""
        state.save(update_fields=["drift_report"])
    return drift


def dms_dry_run(*, paths: Iterable[str] | None = None) -> WriteReport:
    """What the next sync would change in the DMS directory, writing and recording nothing (a page or a command can
    show it at any time): the writer's dry-run report of the declared files that own `paths` (every file when
    None), its `diffs` as `export_dms_files --dry-run` prints them, its `skipped` naming the files the sync leaves
    alone and the values it leaves out. Raises ForeignFiles, as the sync does, while mail's files are not adopted."""
    declared, notes = _left_alone(settings.DMS_DIR, force=False)
    wanted = None if paths is None else set(paths)
    if wanted is not None:
        declared = tuple(item for item in declared if any(item.owns(path) for path in wanted))
        notes = [note for note in notes if note.partition(": ")[0] in wanted]
    skipped = list(notes)
    report = _write(streamed_files(on_skip=skipped.append, declared=declared), root=settings.DMS_DIR, dry_run=True)
    if wanted is not None:  # files outside the selection were not passed: they are not "removed"
        report.removed = [path for path in report.removed if any(item.owns(path) for item in declared)]
        report.diffs = {path: diff for path, diff in report.diffs.items() if path in report.changed + report.removed}
    report.skipped = list(dict.fromkeys(skipped))
    return report


def export_files(
    output_dir: str | os.PathLike[str],
    *,
    dry_run: bool = False,
    force: bool = False,
    progress: ProgressFactory | None = None,
) -> WriteReport:
    """Write the files somewhere else (to inspect or seed a new server). Each output directory has
    its own history and manifest, so an export only ever removes files it wrote there itself."""
    if not force and not dry_run:
        _refuse_foreign(output_dir)
    real = os.path.realpath(output_dir)
    key = hashlib.sha256(real.encode()).hexdigest()[:16]
    (settings.DATA_DIR / "dms-export-history").mkdir(mode=0o700, parents=True, exist_ok=True)
    with counting_dms_files(streamed_files(), progress) as files:
        return _write(
            files, root=output_dir, history_dir=settings.DATA_DIR / "dms-export-history" / key, dry_run=dry_run
        )


def mailbox_exists() -> bool:
    return collection.live_mailbox_exists()


# --- coalescing ----------------------------------------------------------------------------------


def _on_commit() -> None:
    """Runs after the change committed: whatever goes wrong here (cache or broker down) must not
    turn a saved change into an error. The change is already recorded as pending: the next change,
    the next worker start or the periodic check writes it."""
    _local.pending_in = None
    try:
        _queue_sync()
    except Exception:
        log.exception("could not queue a DMS sync; the next change or the periodic check will write the files")


_sync_task: Task | None = None


def use_sync_task(task: Task) -> None:
    """The Celery task that runs catch_up() in a worker, handed over by MailConfig.ready(): the tasks module
    sits above this one and imports it, never the other way round."""
    global _sync_task
    _sync_task = task


def _task() -> Task:
    if _sync_task is None:
        raise RuntimeError("no DMS sync task: MailConfig.ready() hands it over (mail.dms.sync.use_sync_task)")
    return _sync_task


def _queue_sync() -> None:
    """Queue the sync task: at once after a quiet spell, else when DMS_SYNC_DELAY has passed since the
    last sync started. A queued-but-not-started task covers every change until it starts reading, so
    no second one is queued; the marker expires with the wait, so a task lost with a killed worker
    never holds up the next change for longer than that."""
    sync_dms_files = _task()
    delay = settings.DMS_SYNC_DELAY
    if delay <= 0:
        sync_dms_files.apply_async()
        return
    try:
        last_start = cache.get(LAST_START_KEY)
        countdown = 0.0 if last_start is None else min(delay, max(0.0, last_start + delay - time.time()))
        if not cache.add(QUEUED_KEY, 1, timeout=math.ceil(countdown) + 1):
            return
    except Exception:
        log.warning("the cache is unreachable: queueing a DMS sync without coalescing", exc_info=True)
        sync_dms_files.apply_async(countdown=delay)
        return
    try:
        sync_dms_files.apply_async(countdown=countdown)
    except Exception:
        cache.delete(QUEUED_KEY)
        raise


def _mark_behind() -> None:
    DmsPendingChange.objects.create()


def request_sync() -> None:
    """Record that the DMS files are behind, in the current transaction, and schedule one sync after
    it commits (once per transaction).

    Django replaces its list of pending callbacks when a transaction (or the savepoint that
    registered ours) ends, so "our callback is pending in this list" survives rollbacks correctly;
    the pending-change row is inserted beside the callback, so it rolls back with it.
    """
    if not connection.in_atomic_block:
        # Autocommit: the change is already committed; the row follows it at once.
        _mark_behind()
        _on_commit()
        return
    if getattr(_local, "pending_in", None) is connection.run_on_commit:
        return
    _local.pending_in = connection.run_on_commit
    _mark_behind()
    transaction.on_commit(_on_commit)


def sync_started() -> None:
    """Called by the task before it looks at the database, so changes committed from then on queue another."""
    try:
        cache.delete(QUEUED_KEY)
    except Exception:
        log.exception("could not reach the cache; DMS syncs are not coalesced meanwhile")


def _note_sync_start() -> None:
    """A write is starting: the next one waits until DMS_SYNC_DELAY has passed (a lone change does not)."""
    try:
        cache.set(LAST_START_KEY, time.time(), timeout=max(1, math.ceil(settings.DMS_SYNC_DELAY)) + 1)
    except Exception:
        log.exception("could not reach the cache; DMS syncs are not coalesced meanwhile")


def worker_started() -> None:
    """A worker (re)started: finish a half-done write and write what a lost task left behind. Never raises:
    on failure the sync task is queued, with its retries."""
    try:
        report = catch_up()
    except ForeignFiles as e:
        log.warning("DMS files not written at worker start: %s", e)  # waits for the operator (see the admin)
        return
    except DatabaseError as e:
        # Not migrated yet (a first start): the pending changes wait in the database for the next change
        # or the periodic check.
        log.warning("DMS files not checked at worker start, the database is not ready: %s", e)
        return
    except Exception:
        log.exception("catching up the DMS files at worker start failed; queueing a sync with retries")
        try:
            _task().apply_async()
        except Exception:
            log.exception("could not queue a DMS sync; the periodic check will write the files")
        return
    if report is not None:
        log.info("DMS files caught up at worker start: wrote %d file(s)", len(report.changed))
