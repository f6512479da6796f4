"""manage.py feedback ingest: read bounces (DSNs) and complaints (ARF) into Dockspace, from stdin, a file, an mbox
or a maildir. manage.py feedback rates: the hard-bounce and complaint rates per sending IP, domain or sender."""

import sys
from collections import Counter

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from accounts.authz import add_actor_argument, command_actor, require_perm
from dockspace.commandline import ServiceCall, print_json
from dockspace.validation import error_text
from monitoring import feedback, feedback_mailbox, sending_rates
from monitoring.feedback_reports import KINDS
from monitoring.sending_results import DIMENSIONS

OPTIONS = {"raw": "the message", "source": "--file"}
EX_TEMPFAIL = 75  # sysexits.h: Postfix's pipe(8) keeps the message and tries again later


class Command(BaseCommand):
    help = (
        "Read bounces and complaints that came back by mail into Dockspace: delivery status notifications (DSN, RFC "
        "3464) from any MTA and abuse reports (ARF, RFC 5965) from the feedback loops (Yahoo, Microsoft JMRP, AOL...). "
        "Each is classified hard / soft / complaint / other with its reason, tied to the message it tells of (by "
        "queue ID or Message-ID, from the mail traffic) and to the IP that message left from, where the warmup gates "
        "count it. `feedback ingest` reads one raw message from stdin, e.g. `manage.py feedback ingest < bounce.eml`, "
        "or as a pipe from a Postfix that runs beside Dockspace (an alias such as "
        '`bounces: "|/srv/dockspace/manage.py feedback ingest"`; DMS\'s container holds no Dockspace, so with DMS '
        "give Dockspace the feedback mailbox to read over IMAP instead); "
        "--file PATH reads one saved message (.eml), --mbox PATH every message of an mbox file, --maildir PATH every "
        "message of a maildir. `feedback fetch` reads the feedback mailbox (DOCKSPACE_FEEDBACK_MAILBOX) over IMAP "
        "now, as the periodic task does every 5 minutes. A message read before is not stored again, so reading a "
        "mailbox twice changes nothing. "
        "The list is in the admin under Monitoring > Bounces and complaints. `feedback rates [--by ip|domain|sender]` "
        "prints each one's recipients, bounces, complaints and rates over 24 h and 7 d, worst first, flagged as on "
        "the dashboard's card."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        ingest = sub.add_parser(
            "ingest",
            help="Read bounces and complaints (one message from stdin, or --file, --mbox, --maildir).",
            description="Read bounces and complaints and print what each came to (kind, status, recipient, the "
            "message and IP it was tied to). Without an option it reads one raw message from stdin. Exits non-zero "
            f"with the reason when the input holds no message; {EX_TEMPFAIL} (try again later, as Postfix's pipe "
            "does) when the database cannot be reached.",
        )
        where = ingest.add_mutually_exclusive_group()
        where.add_argument("--file", metavar="PATH", help="One raw message saved as a file (e.g. bounce.eml).")
        where.add_argument("--mbox", metavar="PATH", help="An mbox file: every message in it.")
        where.add_argument("--maildir", metavar="PATH", help="A maildir (with cur, new, tmp): every message in it.")
        ingest.add_argument("--json", action="store_true", help="Print what each message came to as JSON.")
        add_actor_argument(ingest)
        fetch = sub.add_parser(
            "fetch",
            help="Read the feedback mailbox (DOCKSPACE_FEEDBACK_MAILBOX) over IMAP now.",
            description="Read the new messages of the feedback mailbox (DOCKSPACE_FEEDBACK_MAILBOX, signed in with "
            "DOCKSPACE_FEEDBACK_PASSWORD) into bounces and complaints, as the periodic task 'Read the feedback "
            "mailbox' does every 5 minutes, and print what they came to. Each message is deleted, kept (marked seen) "
            "or moved as DOCKSPACE_FEEDBACK_AFTER_READ says, only once it is stored. Exits non-zero with the reason "
            f"when the server cannot be reached, its certificate is not trusted or it refuses the sign-in; "
            f"{EX_TEMPFAIL} when the database cannot be reached.",
        )
        add_actor_argument(fetch)
        rates = sub.add_parser(
            "rates",
            help="The hard-bounce and complaint rates per sending IP, domain or sender (24 h, 7 d).",
            description="Print the recipients tried, hard and soft bounces, complaints and their rates over the last "
            "24 hours and 7 days, worst first, each flagged ok / watch / bad / standby against the reference's "
            f"thresholds (not judged under {sending_rates.levels.MINIMUM_SAMPLE} recipients). Needs "
            f"{sending_rates.VIEW} with --as.",
        )
        rates.add_argument("--by", choices=DIMENSIONS, default="ip", help="What to rate (default: ip).")
        rates.add_argument("--json", action="store_true", help="Print the figures as JSON.")
        add_actor_argument(rates)

    def handle(self, *args, action, **options):
        actor = command_actor(options)
        if action == "rates":
            return self._rates(options, actor)
        # Asked before any file is looked at: a refusal tells nothing about what exists.
        with ServiceCall(OPTIONS):
            require_perm(actor, feedback.INGEST)
        if action == "fetch":
            self._fetch(actor)
        else:
            self._ingest(options, actor)

    def _fetch(self, actor):
        try:
            result = feedback_mailbox.feedback_mailbox_fetch(actor=actor)
        except feedback_mailbox.FeedbackMailboxError as exc:
            raise CommandError(f"the feedback mailbox cannot be read: {exc}") from None
        except DatabaseError as exc:
            raise CommandError(
                f"the database cannot be reached ({exc}); the message being read stays in the mailbox: run it again "
                "later",
                returncode=EX_TEMPFAIL,
            ) from None
        self.stdout.write(result.summary())

    def _ingest(self, o, actor):
        if o["mbox"] is not None:
            source, option, messages = f"mbox:{o['mbox']}", "--mbox", feedback.messages_in_mbox(o["mbox"])
        elif o["maildir"] is not None:
            source, option = f"maildir:{o['maildir']}", "--maildir"
            messages = feedback.messages_in_maildir(o["maildir"])
        elif o["file"] is not None:
            source, option = f"file:{o['file']}", "--file"
            messages = iter([self._read(lambda: feedback.message_in_file(o["file"]), option)])
        else:
            source, option = "stdin", "stdin"
            messages = iter([self._read(lambda: feedback.message_in_stream(self._stdin()), option)])
        rows, failed = [], []
        try:
            for number, raw in enumerate(messages, start=1):
                try:
                    done = feedback.feedback_ingest(actor=actor, raw=raw, source=source[:200])
                except ValidationError as exc:
                    failed.append(f"message {number}: {error_text(exc, OPTIONS)}")
                    continue
                rows.append(_row(number, done))
        except feedback.FeedbackInputError as exc:
            raise CommandError(f"{option}: {exc}") from None
        except DatabaseError as exc:
            raise CommandError(
                f"the database cannot be reached ({exc}); nothing more was stored: run it again later",
                returncode=EX_TEMPFAIL,
            ) from None
        if not rows and not failed:
            raise CommandError(f"{option}: it holds no message")
        if o["json"]:
            print_json(self, {"source": source, "messages": rows, "errors": failed})
        else:
            for row in rows:
                self.stdout.write(_line(row))
            self.stdout.write(_summary(rows))
        for line in failed:
            self.stderr.write(line)
        if failed:
            raise CommandError(f"{len(failed)} message(s) could not be read (above); the others were stored")

    def _rates(self, o, actor):
        with ServiceCall():
            windows = {
                window: sending_rates.sending_rates(actor, by=o["by"], window=window)
                for window in sending_rates.WINDOWS
            }
        if o["json"]:
            print_json(self, {"by": o["by"], **{w: [_rate_row(r) for r in rates] for w, rates in windows.items()}})
            return
        for window, rates in windows.items():
            label = sending_rates.WINDOW_LABELS[window]
            self.stdout.write(f"Last {label}, by {o['by']}, worst first:" if rates else f"Last {label}: nothing sent.")
            for rate in rates:
                row = _rate_row(rate)
                self.stdout.write(
                    f"  {rate.key}: {rate.attempts} recipient(s), {rate.hard_bounces} hard "
                    f"({row['hard_bounce_text']}), {rate.soft_bounces} soft, {rate.complaints} complaint(s) "
                    f"({row['complaint_text']}): {row['level']}"
                )

    def _read(self, read, option):
        try:
            return read()
        except feedback.FeedbackInputError as exc:
            raise CommandError(f"{option}: {exc}") from None

    def _stdin(self):
        stream = getattr(self, "stdin", None) or sys.stdin
        return getattr(stream, "buffer", stream)


def _row(number, done):
    report = done.report
    events = [
        {
            "kind": e.kind,
            "status": e.status,
            "feedback_type": e.feedback_type,
            "recipient": e.recipient,
            "reason": e.reason,
            "queue_id": e.message.queue_id if e.message_id else "",
            "sending_ip": e.sending_ip or "",
        }
        for e in done.events
    ]
    return {
        "number": number,
        "new": not done.is_duplicate,
        "kind": report.kind,
        "reason": report.reason,
        "subject": report.subject,
        "digest": done.digest,
        "events": events,
    }


def _line(row):
    if not row["new"]:
        return f"#{row['number']}: read before (sha256 {row['digest'][:12]}), nothing stored: {row['subject']!r}"
    parts = []
    for event in row["events"]:
        what = event["status"] or event["feedback_type"]
        who = event["recipient"] or "recipient unknown"
        tied = f"message {event['queue_id']}" if event["queue_id"] else "no message found"
        if event["sending_ip"]:
            tied += f", sent from {event['sending_ip']}"
        parts.append(f"{event['kind']} {what + ' ' if what else ''}{who} ({tied}): {event['reason']}")
    return f"#{row['number']}: " + "; ".join(parts)


def _summary(rows):
    kinds = Counter(event["kind"] for row in rows if row["new"] for event in row["events"])
    before = sum(1 for row in rows if not row["new"])
    by_kind = ", ".join(f"{kind} {kinds.get(kind, 0)}" for kind in KINDS)
    return (
        f"Read {len(rows)} message(s): {sum(kinds.values())} new event(s) ({by_kind}); {before} read before, "
        "not stored again."
    )


def _percent(value, digits):
    return "-" if value is None else f"{value:.{digits}f} %"


def _rate_row(rate):
    return {
        "key": rate.key,
        "attempts": rate.attempts,
        "hard_bounces": rate.hard_bounces,
        "soft_bounces": rate.soft_bounces,
        "complaints": rate.complaints,
        "hard_bounce_percent": rate.hard_bounce_percent,
        "complaint_percent": rate.complaint_percent,
        "hard_bounce_text": _percent(rate.hard_bounce_percent, 1),
        "complaint_text": _percent(rate.complaint_percent, 2),
        "level": rate.level or "not judged",
    }
