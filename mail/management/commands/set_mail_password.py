"""manage.py set_mail_password ADDRESS [--password-stdin]."""

import getpass
import sys

from django.core.management.base import BaseCommand, CommandError

from dockspace.commandline import ServiceCall, read_password
from mail import services
from mail.commandline import acting_as, add_actor_argument
from mail.management.commands.mailbox import find_mailbox


class Command(BaseCommand):
    help = (
        "Set the password of a mailbox's owner: the same password signs in to mail and to Dockspace. "
        "Asks twice on a terminal, or reads one line with --password-stdin. The DMS file follows within seconds. "
        "Acts as the host; `--as EMAIL` acts with that staff member's permissions instead."
    )

    # call_command(..., stdin=stream) feeds --password-stdin, as with Django's createsuperuser.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("address")
        parser.add_argument("--password-stdin", action="store_true")
        add_actor_argument(parser)

    def handle(self, *args, address, password_stdin=False, stdin=None, **o):
        if not password_stdin and not sys.stdin.isatty():
            raise self._no_terminal(address)  # before anything else: getpass would end in a traceback
        actor, label = acting_as(o, "manage.py set_mail_password")
        mailbox = find_mailbox(address)
        if password_stdin:
            password = read_password(stdin or sys.stdin)
        else:
            password = self._ask_twice(mailbox.address)
        with ServiceCall():
            services.mail_password_set(person=mailbox.person, password=password, actor=actor, actor_label=label)
        self.stdout.write(f"Password set for {mailbox.address} (mail and Dockspace).")

    @staticmethod
    def _no_terminal(address):
        return CommandError(
            "password: there is no terminal to ask on; nothing changed. Pipe the password in with "
            f"--password-stdin, e.g. printf '%s\\n' 'new password' | manage.py set_mail_password {address} "
            "--password-stdin"
        )

    def _ask_twice(self, address):
        try:
            password = getpass.getpass("New password: ")
            again = getpass.getpass("Again: ")
        except EOFError:
            raise self._no_terminal(address) from None
        except KeyboardInterrupt:
            raise CommandError("password: interrupted; nothing changed.") from None
        if password != again:
            raise CommandError("password: the two entries differ; nothing changed.")
        return password
