"""manage.py dms_history list [FILE] | restore FILE SHA256."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.audit import audit
from mail.dms.catalog import file_mode, files_hint
from mail.dms.writer import WriterError, list_versions, restore_version


class Command(BaseCommand):
    help = (
        "Previous versions of the DMS files Dockspace replaced, for rollback. `dms_history list` shows every "
        "file with stored versions; `dms_history list postfix-accounts.cf` lists that file's versions (time, "
        "sha256, size), newest first; `dms_history restore postfix-accounts.cf 3f2a9c` puts that version back "
        "(the current one is kept first). The database stays the source of truth: the next sync (any change, "
        "or the periodic drift repair within 5 minutes) writes what it says again, so fix the data in "
        "Dockspace too."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = sub.add_parser("list", help="List stored versions.")
        listing.add_argument("file", nargs="?")
        restore = sub.add_parser("restore", help="Put a stored version back.")
        restore.add_argument("file")
        restore.add_argument("sha256", help="The first digits (4 or more) of the version's sha256.")

    def handle(self, *args, action, **o):
        history = settings.DMS_HISTORY_DIR
        try:
            if action == "list" and not o["file"]:
                return self._list_all(history)
            if action == "list":
                versions = list_versions(history, o["file"])
                if not versions:
                    raise CommandError(f"file: no stored versions of {o['file']!r}. {files_hint()}")
                for v in versions:
                    self.stdout.write(f"{v.stored_at:%Y-%m-%d %H:%M:%S}Z  {v.sha256[:16]}  {v.size:>9} bytes")
                return
            report = restore_version(
                settings.DMS_DIR,
                history,
                o["file"],
                o["sha256"],
                keep=settings.DMS_HISTORY_KEEP,
                file_mode=file_mode,
            )
        except WriterError as e:
            raise CommandError(str(e)) from None
        audit(
            "mail.dms.restore", actor_label="manage.py dms_history", description=f"Restored {o['file']} {o['sha256']}."
        )
        self.stdout.write(
            f"Restored {o['file']} (sha256 {report.checksums.get(o['file'], '')[:16]}). "
            "The next sync writes what the database says again."
        )

    def _list_all(self, history):
        if not history.exists():
            self.stdout.write("No stored versions yet.")
            return
        for folder in sorted(p for p in history.iterdir() if p.is_dir()):
            path = folder.name.replace("__", "/")
            versions = list_versions(history, path)
            if versions:
                self.stdout.write(
                    f"{path:50} {len(versions)} version(s), newest {versions[0].stored_at:%Y-%m-%d %H:%M}Z"
                )
