"""manage.py scan_dms_files [--dry-run]."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mail.dms import sync
from mail.dms.writer import WriterError


class Command(BaseCommand):
    help = (
        "Compare the Docker Mailserver files on disk with the database (the source of truth) and report "
        "drift file by file and line by line, e.g. after someone ran DMS's `setup` or edited a file by hand. "
        "Repairs the drift unless --dry-run. Exit status: 0 no drift; with --dry-run, 1 when drift was found "
        "(for monitoring)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, dry_run=False, **o):
        try:
            drift = sync.dms_scan(repair=not dry_run)
        except sync.ForeignFiles as e:
            raise CommandError(f"DOCKSPACE_DMS_DIR: {e}") from None
        except (WriterError, OSError) as e:
            # WriterError covers UnsafePath too: a file replaced by a symlink leading out of the directory.
            verb = "read" if dry_run else "check and repair"
            raise CommandError(f"DOCKSPACE_DMS_DIR: could not {verb} {settings.DMS_DIR}: {e}") from None
        if not drift:
            self.stdout.write(f"No drift: {settings.DMS_DIR} matches the database.")
            return
        for path, diff in drift.items():
            self.stdout.write(f"drift in {path}:")
            self.stdout.write(diff.rstrip("\n"))
        if dry_run:
            self.stdout.write(f"Drift in {len(drift)} file(s); nothing repaired (dry run).")
            raise SystemExit(1)
        self.stdout.write(f"Repaired drift in {len(drift)} file(s).")
