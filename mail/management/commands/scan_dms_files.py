"""manage.py scan_dms_files [--dry-run]."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mail.dms import sync
from mail.dms.writer import WriterError


class Command(BaseCommand):
    help = (
        "Compare the Docker Mailserver files on disk with the database (the source of truth) and report "
        "drift file by file and line by line, e.g. after someone ran DMS's `setup` or edited a file by hand. "
        "Repairs the drift unless --dry-run. A file Dockspace leaves alone (another app's file holding lines "
        "Dockspace did not write, e.g. your own postfix-main.cf) is not drift: it is listed with why and what you "
        "can do. Exit status: 0 no drift; with --dry-run, 1 when drift was found (for monitoring)."
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
        left_alone = sync.files_left_alone()
        for note in left_alone:
            self.stdout.write(note)
        if not drift:
            if left_alone:
                self.stdout.write(
                    f"No drift in the files Dockspace writes in {settings.DMS_DIR}; {len(left_alone)} file(s) left "
                    "alone (above), not compared."
                )
            else:
                self.stdout.write(f"No drift: {settings.DMS_DIR} matches the database.")
            return
        for path, diff in drift.items():
            self.stdout.write(f"drift in {path}:")
            self.stdout.write(diff.rstrip("\n"))
        if dry_run:
            self.stdout.write(f"Drift in {len(drift)} file(s); nothing repaired (dry run).")
            raise SystemExit(1)
        self.stdout.write(f"Repaired drift in {len(drift)} file(s).")
