"""manage.py traffic: the mail traffic's totals (as pflogsumm counts them) and breakdowns, and `traffic search`: the
messages matching an address, a Message-ID or a queue ID, each with its story."""

import argparse
import dataclasses
import json
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.authz import add_actor_argument, command_actor
from dockspace.commandline import ServiceCall
from monitoring import traffic_stats
from monitoring.traffic_measures import DIMENSIONS, NOT_POOLED_KEY

OPTIONS = {
    "since": "--since",
    "until": "--until",
    "by": "--by",
    "to": "--to",
    "from": "--from",
    "message_id": "--message-id",
    "queue_id": "--queue-id",
    "status": "--status",
    "limit": "--limit",
}
BREAKDOWN_LIMIT, SEARCH_LIMIT = 20, 50  # the default --limit of the totals' breakdowns and of search
# --by: the breakdowns' names, and "domain" for the sender's and the recipient's domain both.
BY = {"domain": ("sender_domain", "recipient_domain"), **{name: (name,) for name in DIMENSIONS}}
TOTAL_LINES = [  # (label, key, note)
    ("received", "received", "by smtpd on ports 25 and 587, and pickup (as pflogsumm counts)"),
    ("delivered", "delivered", ""),
    ("forwarded", "forwarded", ""),
    ("deferred", "deferred", ""),
    ("bounced", "bounced", ""),
    ("expired", "expired", "recipients given up after waiting too long (pflogsumm counts them nowhere)"),
    ("rejected", "rejected", ""),
    ("reject warnings", "reject_warnings", ""),
    ("held", "held", "kept in the hold queue by a HOLD action (postsuper -H releases them)"),
    ("discarded", "discarded", ""),
    ("bytes received", "bytes_received", ""),
    ("bytes delivered", "bytes_delivered", ""),
    ("senders", "senders", ""),
    ("recipients", "recipients", ""),
    ("accepted", "accepted", "every message taken into the queue, port 465 included"),
]


def _jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _reply(rejection):
    """The code, DSN and reply text of a refusal, those it has."""
    return " ".join(str(part) for part in (rejection.code, rejection.dsn, rejection.reply) if part) or "-"


def _when(moment):
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _number(value):
    return "-" if value is None else f"{value:,}"


def _percent(rate):
    return "-" if rate is None else f"{rate * 100:.1f} %"


def _shown_key(dimension, key):
    if dimension == "ip" and key == NOT_POOLED_KEY:
        return "(no pooled IP)"
    return key


class Command(BaseCommand):
    help = (
        "The mail traffic read from the mail log (`manage.py maillog`). `traffic [--since 24h] [--until WHEN] "
        "[--by domain|sender|recipient|status|ip|sasl|remote|reason] [--json]` prints the totals, counted as Debian's "
        "pflogsumm counts its Grand Totals (received, delivered local and remote, forwarded, deferred messages and "
        "deferrals, bounced, rejected with postscreen, bytes, senders, recipients) plus expired and the bounce and "
        "deferral rates, then the breakdown asked for. `traffic search --to ADDR | --from ADDR | --message-id ID | "
        "--queue-id QID [--since] [--until] [--status STATE] [--json]` prints each matching message's story: how it "
        "came in, every delivery attempt with the remote reply, where it stands. WHEN is a duration back from now "
        "(90m, 24h, 7d) or a date and time (2026-12-06, 2026-12-06T10:00:00+00:00). Past DOCKSPACE_TRAFFIC_DAYS the "
        "figures come from the hourly and daily rollups (90 days). Acts as the host; `--as EMAIL` acts with that "
        "staff member's permissions (monitoring | mail message | Can view)."
    )

    def add_arguments(self, parser):
        # The options shared with `search` may come before it too (`traffic --as EMAIL search ...`): search's own
        # copies leave a value given before it alone (SUPPRESS), and the defaults are applied in handle.
        parser.add_argument("--since", metavar="WHEN", help="Start of the range (default 24h ago).")
        parser.add_argument("--until", metavar="WHEN", help="End of the range (default now).")
        parser.add_argument(
            "--by",
            action="append",
            choices=list(BY),
            metavar="WHAT",
            help=f"A breakdown after the totals (repeat for more): {', '.join(BY)}.",
        )
        parser.add_argument("--limit", type=int, help="Rows per breakdown (default 20).")
        parser.add_argument("--json", action="store_true", help="Print JSON: totals first, then rates, breakdowns.")
        add_actor_argument(parser)
        sub = parser.add_subparsers(dest="action", metavar="search")
        search = sub.add_parser(
            "search",
            help="Find messages and print each one's story.",
            description="Find messages by recipient, sender, Message-ID, queue ID, time and state (all given must "
            "match) and print each one's story: received (client, SASL user, size, Message-ID), each delivery "
            "attempt (time, relay, transport and sending IP, DSN, status, the remote reply), where it stands. "
            "Searching by address also lists the refusals at SMTP for it (mail never queued).",
        )
        search.add_argument("--to", default="", metavar="ADDRESS", help="A recipient (also before an alias).")
        search.add_argument(
            "--from", dest="sender", default="", metavar="ADDRESS", help="The envelope sender; <> for bounces."
        )
        search.add_argument("--message-id", default="", metavar="ID", help="The Message-ID, with or without <>.")
        search.add_argument("--queue-id", default="", metavar="QID", help="Postfix's queue ID (e.g. 4A1B2C3D4E).")
        search.add_argument(
            "--since", default=argparse.SUPPRESS, metavar="WHEN", help="Messages seen since (default: any time)."
        )
        search.add_argument(
            "--until", default=argparse.SUPPRESS, metavar="WHEN", help="Messages seen before (default: now)."
        )
        search.add_argument(
            "--status",
            default="",
            metavar="STATE",
            help="delivered, deferred, bounced, expired, mixed, rejected, queued, held, discarded.",
        )
        search.add_argument(
            "--limit", type=int, default=argparse.SUPPRESS, help="At most this many messages (default 50)."
        )
        search.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="Print the stories as JSON.")
        add_actor_argument(search, default=argparse.SUPPRESS)

    def handle(self, *args, action=None, **options):
        self.actor = command_actor(options)
        if action == "search" and options.get("by"):
            raise CommandError("--by: breakdowns go with the totals (`traffic --by ...`), not with search.")
        if options.get("limit") is None:
            options["limit"] = SEARCH_LIMIT if action == "search" else BREAKDOWN_LIMIT
        if action != "search" and options.get("since") is None:
            options["since"] = "24h"
        now = timezone.now()
        with ServiceCall(OPTIONS):
            if action == "search":
                self._search(options, now)
            else:
                self._totals(options, now)

    # --- totals and breakdowns ---

    def _moment(self, options, name, now):
        text = options.get(name)
        return None if text is None else traffic_stats.parse_moment(text, field=name, now=now)

    def _totals(self, o, now):
        if o["limit"] < 1:
            raise CommandError("--limit: must be at least 1.")
        since, until = self._moment(o, "since", now), self._moment(o, "until", now)
        totals = traffic_stats.traffic_totals(self.actor, since=since, until=until, now=now)
        breakdowns = [
            traffic_stats.traffic_breakdown(self.actor, by=name, since=since, until=until, limit=o["limit"], now=now)
            for wanted in dict.fromkeys(o["by"] or ())  # each once, in the order given
            for name in BY[wanted]
        ]
        if o["json"]:
            self._print_json(
                {
                    "totals": totals.as_dict(),
                    "rates": {"bounce_rate": totals.bounce_rate, "deferral_rate": totals.deferral_rate},
                    "since": totals.since,
                    "until": totals.until,
                    "read_from": totals.read_from,
                    "by_direction": totals.by_direction,
                    "breakdowns": {
                        b.dimension: {
                            "label": b.label,
                            "read_from": b.read_from,
                            "since": b.since,
                            "keys_total": b.keys_total,
                            "rows": [{"key": row.key, **row.values, "bounce_rate": row.bounce_rate} for row in b.rows],
                        }
                        for b in breakdowns
                    },
                }
            )
            return
        source = "raw rows" if totals.read_from == traffic_stats.RAW else "hourly rollups: sums only"
        self.stdout.write(f"Mail traffic from {_when(totals.since)} to {_when(totals.until)} ({source}).")
        values = totals.as_dict()
        notes = {
            "delivered": f"local {values['delivered_local']:,}, remote {values['delivered_remote']:,}",
            "deferred": f"{values['deferrals']:,} deferrals",
            "rejected": f"{values['rejected_percent']} % (postscreen included)",
            "discarded": f"{values['discarded_percent']} %",
            "senders": f"{_number(values['sending_hosts_domains'])} sending hosts/domains",
            "recipients": f"{_number(values['recipient_hosts_domains'])} recipient hosts/domains",
        }
        for label, key, note in TOTAL_LINES:
            extra = notes.get(key, note)
            self.stdout.write(f"  {label:<16} {_number(values[key]):>14}" + (f"   {extra}" if extra else ""))
        self.stdout.write(
            f"  {'bounce rate':<16} {_percent(totals.bounce_rate):>14}   deferral rate {_percent(totals.deferral_rate)}"
        )
        for breakdown in breakdowns:
            self._print_breakdown(breakdown)

    def _print_breakdown(self, b):
        shown = f"top {len(b.rows)} of {b.keys_total}" if b.keys_total > len(b.rows) else f"{b.keys_total}"
        self.stdout.write("")
        self.stdout.write(f"By {b.label} ({shown}):")
        if not b.rows:
            self.stdout.write("  (nothing in this range)")
            return
        has_rate = "bounced" in b.columns
        width = max(len(b.label), *(len(_shown_key(b.dimension, row.key)) for row in b.rows))
        width = min(width, 60)
        heads = [c.replace("_", " ") for c in b.columns] + (["bounce rate"] if has_rate else [])
        self.stdout.write(f"  {b.label:<{width}} " + " ".join(f"{h:>12}" for h in heads))
        for row in b.rows:
            cells = [_number(row.values[c]) for c in b.columns] + ([_percent(row.bounce_rate)] if has_rate else [])
            key = _shown_key(b.dimension, row.key)[:width]
            self.stdout.write(f"  {key:<{width}} " + " ".join(f"{cell:>12}" for cell in cells))

    # --- search ---

    def _search(self, o, now):
        if o["limit"] < 1:
            raise CommandError("--limit: must be at least 1.")
        found = traffic_stats.message_search(
            self.actor,
            to=o["to"],
            sender=o["sender"],
            message_id=o["message_id"],
            queue_id=o["queue_id"],
            since=self._moment(o, "since", now),
            until=self._moment(o, "until", now),
            status=o["status"],
            limit=o["limit"],
        )
        stories = [traffic_stats.message_story(self.actor, summary.id) for summary in found.messages]
        if o["json"]:
            self._print_json(
                {
                    "messages": [dataclasses.asdict(story) for story in stories],
                    "rejections": [dataclasses.asdict(r) for r in found.rejections],
                    "truncated": found.truncated,
                }
            )
            return
        if not stories and not found.rejections:
            self.stdout.write("No message matches.")
            return
        for story in stories:
            self._print_story(story)
        if found.truncated:
            self.stdout.write(f"... more messages match: narrow the search or raise --limit ({o['limit']}).")
        if found.rejections:
            self.stdout.write("Refused, warned, held or discarded at SMTP:")
            for r in found.rejections:
                self.stdout.write(
                    f"  {_when(r.at)}  {r.outcome} at {r.stage}: <{r.sender}> -> <{r.recipient}> from "
                    f"{r.client or '?'}: {_reply(r)}".rstrip()
                )

    def _print_story(self, story):
        m, r = story.message, story.reception
        self.stdout.write(
            f"Message {m.queue_id} (log source {m.source}): from <{m.sender}>"
            + (f", Message-ID <{m.message_id}>" if m.message_id else "")
            + f", {m.direction or 'direction unknown'}"
        )
        if r.received_by:
            came = f"received by {r.received_by}"
        elif not m.sender and m.direction == "out":
            came = "written by Postfix (a notification to the sender)"
        else:
            came = "first seen (the line taking it in is not in the log)"
        parts = [came]
        if r.client:
            parts.append(f"from {r.client}")
        if r.sasl_username:
            parts.append(f"SASL user {r.sasl_username}")
        if r.size is not None:
            parts.append(f"{r.size:,} bytes")
        if r.nrcpt is not None:
            parts.append(f"{r.nrcpt} recipient(s)")
        self.stdout.write(f"  {_when(r.at)}  " + ", ".join(parts))
        for a in story.attempts:
            via = f" via {a.relay}" if a.relay else ""
            transport = a.service + (f", sending IP {a.sending_ip}" if a.sending_ip else "") if a.service else ""
            delay = f", delay {a.delay:g} s" if a.delay is not None else ""
            dsn = f", dsn {a.dsn}" if a.dsn else ""
            self.stdout.write(
                f"  {_when(a.at)}  to <{a.recipient}>"
                + (f" (for <{a.orig_recipient}>)" if a.orig_recipient else "")
                + f": {a.status}{via}"
                + (f" ({transport})" if transport else "")
                + f"{delay}{dsn}"
            )
            if a.reply:
                self.stdout.write(f"  {'':19}  {a.reply}")
        for rejection in story.rejections:
            self.stdout.write(f"  {_when(rejection.at)}  {rejection.outcome} at {rejection.stage}: {_reply(rejection)}")
        left = f" Left the queue {_when(story.final.removed_at)}." if story.final.removed_at else ""
        self.stdout.write(f"  Now: {story.final.summary}{left}")
        self.stdout.write("")

    def _print_json(self, data):
        self.stdout.write(json.dumps(_jsonable(data), indent=2))
