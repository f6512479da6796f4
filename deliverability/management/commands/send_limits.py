"""manage.py send_limits show|reset: today's sending of a mailbox or domain against its tier's daily limits, and the
reset that lifts a block."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from redis.exceptions import RedisError

from accounts.authz import add_actor_argument, command_actor, command_actor_label
from deliverability import send_limits
from dockspace.commandline import ServiceCall, describe_actions, print_json

ACTOR = "manage.py send_limits"
OPTIONS = {"subject": "ADDRESS|DOMAIN"}
SUBJECT_HELP = "A mailbox address (bob@example.com) or a domain (example.com)."


def usage_line(usage):
    whose = f"{usage.subject} (all its mailboxes)" if usage.per_domain else usage.subject
    if usage.limit is None:
        return f"{whose}: sent to {usage.used} recipients today; no daily limit"
    state = "FULL: refused (452) until the reset" if usage.is_full else f"{usage.remaining} left"
    return (
        f"{whose}: sent to {usage.used} of {usage.limit} recipients allowed today ({state}); "
        f"tier {usage.tier}; resets at {usage.resets_at:%Y-%m-%d %H:%M} UTC"
    )


class Command(BaseCommand):
    help = (
        "Today's sending against the tiers' daily limits, as the policy service counts it (recipients of accepted "
        "messages, per UTC day). `show ADDRESS|DOMAIN [--json]`: a mailbox's count and its domain's total, or a "
        "domain's total. `reset ADDRESS|DOMAIN`: lift today's block (the count starts again from 0 until 00:00 "
        "UTC; a mailbox reset clears its own count, a domain reset the domain's total); audited. `held [--json]`: "
        "the mail held in Postfix's queue until an IP of its pool has room in its warmup caps, and when each goes "
        "(DOCKSPACE_POLICY_RELEASE_COMMAND releases it). Commands act as "
        "the host; `--as EMAIL` acts with that staff member's permissions."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        show = sub.add_parser("show", help="Show today's count and limit of a mailbox (and its domain) or a domain.")
        show.add_argument("subject", metavar="ADDRESS|DOMAIN", help=SUBJECT_HELP)
        show.add_argument("--json", action="store_true", help="Print JSON.")
        reset = sub.add_parser("reset", help="Start today's count of a mailbox or a domain again from 0.")
        reset.add_argument("subject", metavar="ADDRESS|DOMAIN", help=SUBJECT_HELP)
        held = sub.add_parser(
            "held", help="List the mail held in Postfix's queue for warmup room, with when each is released."
        )
        held.add_argument("--json", action="store_true", help="Print JSON.")
        for parser_ in sub.choices.values():
            add_actor_argument(parser_)
        describe_actions(sub)

    def handle(self, *args, action, **o):
        actor = command_actor(o)
        try:
            if action == "held":
                with ServiceCall(OPTIONS):
                    backlog = send_limits.held_backlog(actor=actor)
                return self._held(backlog, o["json"])
            if action == "show":
                with ServiceCall(OPTIONS):
                    usage = send_limits.send_usage(actor=actor, subject=o["subject"])
                if o["json"]:
                    return print_json(self, [u.as_dict() for u in usage])
                for line in map(usage_line, usage):
                    self.stdout.write(line)
                return None
            with ServiceCall(OPTIONS):
                before = send_limits.send_limits_reset(
                    actor=actor, subject=o["subject"], actor_label=command_actor_label(ACTOR, actor)
                )
        except (RedisError, OSError) as exc:
            raise CommandError(f"the policy service's counters cannot be reached: {exc}") from None
        cleared = before[0]
        self.stdout.write(f"Reset today's count of {cleared.subject}: was {cleared.used}, now 0.")
        return None

    def _held(self, backlog, as_json):
        if as_json:
            return print_json(self, [held.as_dict() for held in backlog])
        if not backlog:
            self.stdout.write("No mail is held for warmup room.")
            return None
        for held in backlog:
            self.stdout.write(
                f"{held.queue_id}  {held.sender}  {held.recipients} recipient(s)  pool {held.pool} via {held.ip}  "
                f"released at {held.release_at:%Y-%m-%d %H:%M} UTC"
            )
        if not settings.POLICY_RELEASE_COMMAND:
            self.stdout.write(
                "DOCKSPACE_POLICY_RELEASE_COMMAND is not set: held mail is not released by Dockspace; release it with "
                "`postsuper -H QUEUE_ID` on the mail host."
            )
        return None
