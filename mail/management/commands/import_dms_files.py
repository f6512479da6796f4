"""manage.py import_dms_files --from DIR [--dry-run] [--json]: adopt an existing DMS config directory."""

import json
import os
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mail.dms.adoption import ACTOR, adopt_dms_directory
from mail.dms.directory import DmsDirectoryError
from mail.progress import terminal_progress

# Exit codes: 0 everything adopted, 1 some lines reported as not adoptable, 2 nothing could be read.
EXIT_NOT_ADOPTED = 1
EXIT_UNREADABLE = 2


class Command(BaseCommand):
    help = (
        "Adopt an existing Docker Mailserver setup: reads postfix-accounts.cf, dovecot-quotas.cf, "
        "postfix-virtual.cf, postfix-send-access.cf and postfix-receive-access.cf from DMS's config directory (the "
        "one mounted at /tmp/docker-mailserver) and creates the missing domains, people, mailboxes (with their "
        "quotas, and their passwords: each person signs in to Dockspace and mail with the password they already "
        "have; an account blocked from sending becomes suspended, one refused mail becomes disabled), aliases, "
        "catch-alls and 'keep a copy' forwards. Safe to run again: what already exists is reported as already "
        "present and never overwritten. Every line it cannot adopt, which would be lost when Dockspace takes the "
        "files over, is listed with its file and line number; fix those and run it again. A line Dockspace "
        "itself writes from its data (a list, a REJECT for an empty list, say) is reported as regenerated, "
        "not lost, so running it on files Dockspace wrote finds nothing to fix. The files Dockspace "
        "never writes (postfix-regexp.cf, postfix-relaymap.cf, ...) are named and left alone. Run with --dry-run "
        "first to see the report without saving anything; progress is shown on a terminal. Exit code 0: everything "
        "adopted; 1: some lines were not adopted (the rest was, unless --dry-run); 2: the directory cannot be "
        "read. Stop DMS's own `setup` edits meanwhile, and point DOCKSPACE_DMS_DIR at the directory only once "
        "the import is done: Dockspace then rewrites these files from its database."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="directory", required=True, metavar="DIR", help="DMS's config directory.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check and report everything, then roll back: nothing is saved."
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, directory, dry_run, **options):
        started = time.monotonic()
        try:
            report = adopt_dms_directory(
                directory, dry_run=dry_run, actor_label=ACTOR, progress=terminal_progress(self.stderr._out)
            )
        except DmsDirectoryError as e:
            raise CommandError(str(e), returncode=EXIT_UNREADABLE) from None
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self.stdout.write("\n".join(report.lines()))
            self.stdout.write(
                f"{'Checked' if dry_run else 'Done'} in {time.monotonic() - started:.1f} s: "
                f"{len(report.created_mailboxes)} mailbox(es), {len(report.created_aliases)} alias(es) "
                f"{'would be ' if dry_run else ''}created, {len(report.already_present)} already present, "
                f"{len(report.not_adopted)} line(s) not adopted."
            )
        if not dry_run and os.path.realpath(directory) == os.path.realpath(settings.DMS_DIR):
            from mail.dms.sync import foreign_files

            if foreign_files(settings.DMS_DIR):
                self.stdout.write(
                    "These files are still DMS's own: Dockspace will not replace them until you run "
                    "`manage.py export_dms_files --dry-run` to check the difference, then "
                    "`manage.py export_dms_files --force`."
                )
        if not report.is_complete:
            raise CommandError(
                f"{len(report.not_adopted)} line(s) could not be adopted"
                + (" (dry run: nothing was saved)." if dry_run else "; everything else was."),
                returncode=EXIT_NOT_ADOPTED,
            )
