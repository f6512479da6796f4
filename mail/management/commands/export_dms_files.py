"""manage.py export_dms_files [--output-dir PATH] [--dry-run]."""

import os
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mail.dms import sync
from mail.dms.writer import LockTimeout, UnsafePath, WriteError
from mail.progress import terminal_progress


def directory_problem(target, *, needs_write):
    """Why target cannot take the files, or None. Checked first so the operator reads the cause, not an errno."""
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return "is not a directory" if existing == target else f"is below {existing}, which is not a directory"
    if needs_write and not os.access(existing, os.W_OK | os.X_OK):
        return "is not writable" if existing == target else f"cannot be created: {existing} is not writable"
    return None


class Command(BaseCommand):
    help = (
        "Write the Docker Mailserver files from the database now (normally a sync runs by itself a few "
        "seconds after every change). Writes into DOCKSPACE_DMS_DIR, or --output-dir PATH to inspect or seed "
        "another server. --dry-run prints a unified diff of what would change and writes nothing. Files that "
        "Dockspace did not write (an existing DMS setup) are never replaced unless you pass --force: adopt them "
        "first with import_dms_files. On a terminal, a progress bar shows the lines written, the rate and the time "
        "left."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output-dir", type=Path)
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Replace files Dockspace did not write: mail's account files (adopt them first with "
            "import_dms_files) and files otherwise left alone, such as your own postfix-main.cf or user-patches.sh "
            "(their lines are replaced; --dry-run lists them).",
        )

    def handle(self, *args, output_dir=None, dry_run=False, force=False, **o):
        target = output_dir.expanduser().resolve() if output_dir else settings.DMS_DIR
        field = "--output-dir" if output_dir else "DOCKSPACE_DMS_DIR"
        # DMS_DIR goes straight to the sync, which records its failure where the admin shows it.
        problem = directory_problem(target, needs_write=not dry_run) if output_dir else None
        if problem:
            raise CommandError(f"{field}: {target} {problem}; give a directory Dockspace can write to.")
        started = time.monotonic()
        progress = terminal_progress(self.stderr._out)
        try:
            if output_dir and target != settings.DMS_DIR:
                report = sync.export_files(target, dry_run=dry_run, force=force, progress=progress)
            else:
                report = sync.dms_sync(dry_run=dry_run, force=force, progress=progress)
        except sync.ForeignFiles as e:
            raise CommandError(f"{field}: {e}") from None
        except (WriteError, UnsafePath, LockTimeout, OSError) as e:
            raise CommandError(f"{field}: could not write to {target}: {e}") from None
        if dry_run:
            for diff in report.diffs.values():
                self.stdout.write(diff.rstrip("\n"))
            self._left_out(report)
            self.stdout.write(f"Dry run: {len(report.diffs)} file(s) would change in {target}; nothing written.")
            return
        for path in report.changed:
            self.stdout.write(f"wrote   {path}")
        for path in report.removed:
            self.stdout.write(f"removed {path}")
        self._left_out(report)
        self.stdout.write(
            f"{len(report.changed)} written, {len(report.removed)} removed, "
            f"{len(report.unchanged)} unchanged in {target}. Done in {time.monotonic() - started:.1f} s."
        )
        if not sync.mailbox_exists():
            self.stderr.write(
                "Warning: no mailbox exists. DMS stops itself about 120 s after start without one; create a mailbox."
            )

    def _left_out(self, report):
        """Files left alone and values that cannot be written: not written, and why (the sync state keeps them
        too)."""
        for note in report.skipped:
            self.stdout.write(f"not written: {note}")
