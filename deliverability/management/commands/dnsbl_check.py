"""manage.py dnsbl_check [IP|DOMAIN ...] [--json]: ask the blocklists now, store the standings, apply the actions."""

from django.core.management.base import BaseCommand, CommandError

from accounts.authz import add_actor_argument, command_actor, command_actor_label
from deliverability import dnsbl
from deliverability.records.dnsbl import ERROR
from dockspace.commandline import ServiceCall, print_json

ACTOR = "manage.py dnsbl_check"


class Command(BaseCommand):
    help = (
        "Ask every enabled blocklist (DNSBL) now about the given IPs and domains (default: every sending IP and "
        "active domain), store the results the admin shows and apply the lists' actions, as the hourly sweep does: "
        "a listing on a standby list rests an ACTIVE or WARMING sending IP at once. Error answers (a public "
        "resolver refused, timeouts) are shown and change nothing. A list failing its RFC 5782 test points is "
        "marked broken and its answers are ignored: one line per broken list says why. Exit status: 0 when nothing "
        "is listed, 1 when anything is listed, 2 when nothing could be checked reliably (every list asked is "
        "broken, or every answer is an error; said on stderr). --json prints the same as JSON. Acts as the host; "
        "`--as EMAIL` needs that staff member's permission to run the blocklist checks."
    )

    def add_arguments(self, parser):
        parser.add_argument("subjects", nargs="*", metavar="IP|DOMAIN", help="What to check (default: everything).")
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
        add_actor_argument(parser)

    def handle(self, *args, subjects, **o):
        actor = command_actor(o)
        with ServiceCall():
            # The same check as the admin's and dnsbl_check_now's: a bad subject is refused naming the argument.
            chosen = [dnsbl.subject_for(text, "IP|DOMAIN") for text in subjects] if subjects else None
            report = dnsbl.dnsbl_sweep(chosen, actor=actor, actor_label=command_actor_label(ACTOR, actor))
        # A broken list's answers are ignored (its failed lookups are kept as history only): its line says so,
        # instead of one error row per subject.
        broken_pks = {d.pk for d in report.broken}
        considered = [o for o in report.outcomes if o.dnsbl.pk not in broken_pks]
        rows = [
            {
                "subject": o.subject.name,
                "list": o.dnsbl.name,
                "zone": o.dnsbl.zone,
                "status": o.verdict.status,
                "code": o.verdict.code,
                "meaning": o.verdict.meaning,
                "action": o.dnsbl.action,
                "removal_url": o.dnsbl.removal_url,
                "moved_to_resting": o.moved_to_resting,
            }
            for o in considered
        ]
        broken = [{"list": d.name, "zone": d.zone, "reason": d.health_reason} for d in report.broken]
        if o["json"]:
            print_json(self, {"results": rows, "broken_lists": broken})
        else:
            for row in rows:
                line = f"{row['subject']:40} {row['list']:24} {row['status']:7} {row['code']} {row['meaning']}"
                self.stdout.write(line.rstrip())
                if row["moved_to_resting"]:
                    self.stdout.write(f"  -> {row['subject']} moved to RESTING")
            for row in broken:
                self.stdout.write(f"{row['list']}: broken ({row['reason']}); its answers were ignored")
            if not rows and not broken:
                self.stdout.write("Nothing to check: no enabled list, or no sending IP or active domain.")
        listed = sorted({o.subject.name for o in report.listed})
        if listed:
            raise CommandError(f"listed: {', '.join(listed)}.")
        unreliable = _nothing_checked_reliably(considered, broken)
        if unreliable:
            raise CommandError(f"nothing could be checked reliably: {unreliable}.", returncode=2)


def _nothing_checked_reliably(considered, broken) -> str:
    """Why no answer of this run can be trusted; "" when one can, or when nothing was asked."""
    if not (considered or broken) or any(o.verdict.status != ERROR for o in considered):
        return ""
    names = ", ".join(row["list"] for row in broken)
    if not considered:
        return f"every list asked is broken ({names})"
    return f"every answer is an error ({len(considered)} error(s))" + (f"; broken lists: {names}" if broken else "")
