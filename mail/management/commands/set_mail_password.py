"""manage.py set_mail_password ADDRESS [--password-stdin]."""

import getpass
import sys

from django.core.management.base import BaseCommand, CommandError

from mail import services
from mail.commandline import ServiceCall, acting_as, add_actor_argument, read_password
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
        actor, label = acting_as(o, "manage.py set_mail_password")
        mailbox = find_mailbox(address)
        if password_stdin:
            password = read_password(stdin or sys.stdin)
        else:
            password = getpass.getpass("New password: ")
            if password != getpass.getpass("Again: "):
                raise CommandError("password: the two entries differ; nothing changed.")
        with ServiceCall():
            services.mail_password_set(person=mailbox.person, password=password, actor=actor, actor_label=label)
        self.stdout.write(f"Password set for {mailbox.address} (mail and Dockspace).")
