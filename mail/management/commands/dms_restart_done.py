"""manage.py dms_restart_done [--as EMAIL]."""

from django.core.management.base import BaseCommand

from dockspace.commandline import ServiceCall
from mail import services
from mail.commandline import acting_as, add_actor_argument

ACTOR = "manage.py dms_restart_done"


class Command(BaseCommand):
    help = (
        "Say that you recreated the mailserver container by hand (`docker compose up -d --force-recreate "
        "mailserver`), so DMS now applies the OpenDKIM keys, postfix-main.cf and user-patches.sh a sync wrote: "
        "clears 'restart needed' on the DMS sync state and on every mail host (monitoring). A plain `docker "
        "restart` does not apply them: do not run this after one. `manage.py mailhost recreate NAME --execute` "
        "recreates a host's container and clears its flag itself. Acts as the host; `--as EMAIL` acts with that "
        "staff member's permissions (change the DMS sync state)."
    )

    def add_arguments(self, parser):
        add_actor_argument(parser)

    def handle(self, *args, **o):
        actor, label = acting_as(o, ACTOR)
        with ServiceCall():
            services.dms_restart_done(actor=actor, actor_label=label)
        self.stdout.write("Cleared 'restart needed' on the DMS sync state and on every mail host.")
