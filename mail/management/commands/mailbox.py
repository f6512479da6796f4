"""manage.py mailbox add|list|show|update|remove|suspend|resume|disable|import|export."""

import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from dockspace.commandline import ServiceCall, not_found, print_json, print_record, read_password
from dockspace.validation import error_text
from mail import services
from mail.addresses import normalize_address
from mail.commandline import acting_as, actor_arguments, domain_argument, quota_argument, warn_plus
from mail.models import Mailbox
from mail.quota import format_quota
from mail.selectors import mailboxes_for

ACTOR = "manage.py mailbox"
# The services name model fields; the operator typed these options.
OPTIONS = {"full_name": "--name", "quota": "--quota", "person": "--person"}


def mailbox_data(m):
    return {
        "address": m.address,
        "name": m.person.full_name,
        "person": m.person.email,
        "uuid": str(m.person.uuid),
        "quota": format_quota(m.quota),
        "state": m.state,
        "created_at": m.created_at.isoformat(),
    }


def find_mailbox(address, field="ADDRESS", mailboxes=None):
    """The mailbox at `address` among `mailboxes` (default: all; a read passes what the actor may see)."""
    try:
        address = normalize_address(address, field)
    except ValidationError as e:
        raise CommandError(error_text(e)) from None
    if mailboxes is None:
        mailboxes = Mailbox.objects.select_related("person", "domain")
    mailbox = mailboxes.filter(address=address).first()
    if mailbox is None:
        raise not_found(field, "mailbox", address)
    return mailbox


class Command(BaseCommand):
    help = (
        "Manage mailboxes. `mailbox add ADDRESS [--name 'Full Name'] [--quota 2G] [--password-stdin]` creates "
        "the mailbox and its person (who signs in to Dockspace and mail with the same password; without "
        "--password-stdin nobody can sign in until a reset link or set_mail_password sets one). "
        "`mailbox list [--domain D] [--json]`, `show ADDRESS [--json]`, `update ADDRESS [--name N] [--quota Q] "
        "[--password-stdin]`, `remove ADDRESS [--delete-person]` (stored mail stays on the DMS volume), "
        "`suspend ADDRESS` (no sign-in, mail still delivered), `disable ADDRESS` (no sign-in, no delivery), "
        "`resume ADDRESS`, `import --csv FILE [--replace-passwords]` (columns address, name, quota, state, and "
        "password or password_hash; every row is checked first and nothing is imported if one is bad; a row for an "
        "existing person keeps their password unless --replace-passwords), `export --csv FILE [--force]` (address, "
        "name, quota, state: a file import reads back as it is, into a database with the same domains; an existing "
        "FILE is replaced only with --force). "
        "`add ADDRESS --person EMAIL` gives the mailbox to an existing person. Commands act as the host; "
        "`--as EMAIL` acts with that staff member's permissions instead."
    )

    # call_command(..., stdin=stream) feeds --password-stdin, as with Django's createsuperuser.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = sub.add_parser("add", help="Create a mailbox (and its person).")
        add.add_argument("address")
        add.add_argument("--name", default="")
        add.add_argument("--quota", help="e.g. 2G, 500M, 0 for no limit (default: the domain's).")
        add.add_argument("--password-stdin", action="store_true", help="Read the password from standard input.")
        add.add_argument("--person", metavar="EMAIL", help="Give the mailbox to the existing person who signs in so.")
        listing = sub.add_parser("list", help="List mailboxes.")
        listing.add_argument("--domain")
        listing.add_argument("--json", action="store_true")
        show = sub.add_parser("show", help="Show one mailbox.")
        show.add_argument("address")
        show.add_argument("--json", action="store_true")
        update = sub.add_parser("update", help="Change a mailbox.")
        update.add_argument("address")
        update.add_argument("--name")
        update.add_argument("--quota")
        update.add_argument("--password-stdin", action="store_true")
        remove = sub.add_parser("remove", help="Remove a mailbox from DMS (stored mail is kept).")
        remove.add_argument("address")
        remove.add_argument("--delete-person", action="store_true", help="Also delete the person.")
        for verb, text in [
            ("suspend", "No sign-in to mail or Dockspace; mail is still delivered."),
            ("disable", "No sign-in and no delivery; stored mail is kept."),
            ("resume", "Back to active."),
        ]:
            sub.add_parser(verb, help=text).add_argument("address")
        imp = sub.add_parser("import", help="Create mailboxes from a CSV file, all or nothing.")
        imp.add_argument("--csv", required=True, dest="csv_path")
        imp.add_argument(
            "--replace-passwords",
            action="store_true",
            help="Let a row's password or password_hash replace the sign-in password of an existing person.",
        )
        exp = sub.add_parser("export", help="Write every mailbox to a CSV file (no passwords).")
        exp.add_argument("--csv", required=True, dest="csv_path")
        exp.add_argument("--force", action="store_true", help="Replace the file if it already exists.")
        actor_arguments(sub)

    def handle(self, *args, action, stdin=None, **o):
        self.stdin = stdin or sys.stdin
        self.actor, self.label = acting_as(o, ACTOR)
        getattr(self, "_" + action)(o)

    def _who(self):
        return {"actor": self.actor, "actor_label": self.label}

    def _add(self, o):
        quota = quota_argument(o["quota"])
        password = read_password(self.stdin) if o["password_stdin"] else None
        person = None
        if o["person"] is not None:
            from accounts.models import User, normalize_email

            if not o["person"].strip():
                raise CommandError("--person: an email address is required; leave --person out to create a new person.")

            person = User.objects.filter(email=normalize_email(o["person"])).first()
            if person is None:
                raise not_found("--person", "person signing in as", o["person"])
        with ServiceCall(OPTIONS):
            mailbox = services.mailbox_create(
                address=o["address"],
                full_name=o["name"],
                quota=quota,
                password=password,
                person=person,
                **self._who(),
            )
        self.stdout.write(f"Created {mailbox.address} (quota {format_quota(mailbox.quota)}).")
        warn_plus(self, mailbox.address)
        if password is None:
            self.stdout.write("No password yet: send a reset link from the admin, or run set_mail_password.")

    def _visible(self, field="__all__"):
        """The mailboxes the actor may see; refused (non-zero exit) without the permission to view mailboxes."""
        with ServiceCall({"__all__": "--as"}):
            return mailboxes_for(self.actor, field=field)

    def _list(self, o):
        qs = self._visible()
        if o["domain"] is not None:
            qs = qs.filter(domain__name=domain_argument(o["domain"]))
        rows = [mailbox_data(m) for m in qs]
        if o["json"]:
            return print_json(self, rows)
        for r in rows:
            self.stdout.write(f"{r['address']:45} {r['quota']:>7} {r['state']:10} {r['name']}")

    def _show(self, o):
        mailbox = find_mailbox(o["address"], mailboxes=self._visible())
        data = mailbox_data(mailbox)
        from mail.selectors import mail_overview

        overview = mail_overview(mailbox.person)
        data["aliases"] = [a.address for a in overview["aliases"]]
        data["lists"] = [g.list_address for g in overview["lists"]]
        data["groups"] = [g.name for g in overview["groups"]]
        print_record(self, data, o["json"])

    def _update(self, o):
        mailbox = find_mailbox(o["address"])
        quota = quota_argument(o["quota"])
        password = read_password(self.stdin) if o["password_stdin"] else None
        if quota is None and o["name"] is None and password is None:
            raise CommandError("nothing to change: give --name, --quota or --password-stdin.")
        with ServiceCall(OPTIONS):
            services.mailbox_update(mailbox=mailbox, quota=quota, full_name=o["name"], password=password, **self._who())
        self.stdout.write(f"Updated {mailbox.address}.")

    def _remove(self, o):
        mailbox = find_mailbox(o["address"])
        with ServiceCall():
            services.mailbox_remove(mailbox=mailbox, keep_person=not o["delete_person"], **self._who())
        self.stdout.write(f"Removed {mailbox.address}; its stored mail stays on the DMS volume.")

    def _set_state(self, o, state, done):
        mailbox = find_mailbox(o["address"])
        with ServiceCall():
            _, changed = services.mailbox_set_state(mailbox=mailbox, state=state, **self._who())
        self.stdout.write(f"{mailbox.address} {done}." if changed else f"{mailbox.address} was already {state}.")

    def _suspend(self, o):
        self._set_state(o, Mailbox.SUSPENDED, "suspended: no sign-in, mail still delivered")

    def _disable(self, o):
        self._set_state(o, Mailbox.DISABLED, "disabled: no sign-in, no delivery, stored mail kept")

    def _resume(self, o):
        self._set_state(o, Mailbox.ACTIVE, "is active again")

    def _import(self, o):
        from mail.csv_io import CsvImportError, mailboxes_import_csv
        from mail.progress import terminal_progress

        try:
            result = mailboxes_import_csv(
                o["csv_path"],
                replace_passwords=o["replace_passwords"],
                progress=terminal_progress(self.stderr._out),
                **self._who(),
            )
        except CsvImportError as e:
            raise CommandError(str(e)) from None
        self.stdout.write(f"Imported {result.created} mailbox(es) from {o['csv_path']}.")
        with_plus = [address for address in result.addresses if "+" in address.partition("@")[0]]
        if with_plus:
            shown = ", ".join(with_plus[:20]) + (f" and {len(with_plus) - 20} more" if len(with_plus) > 20 else "")
            self.stderr.write(
                f"Warning: {len(with_plus)} address(es) contain '+', which DMS uses as the recipient delimiter "
                f"(mail to them may be delivered to the address without the '+' part, or refused): {shown}."
            )

    def _export(self, o):
        from mail.csv_io import mailboxes_export_csv

        self._visible()
        try:
            count = mailboxes_export_csv(o["csv_path"], overwrite=o["force"])
        except FileExistsError:
            raise CommandError(f"--csv: {o['csv_path']} already exists; add --force to replace it.") from None
        except OSError as e:
            raise CommandError(f"--csv: cannot write {o['csv_path']}: {e.strerror or e}.") from None
        self.stdout.write(f"Wrote {count} mailbox(es) to {o['csv_path']}.")
