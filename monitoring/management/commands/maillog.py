"""manage.py maillog ingest|follow: read mail logs into traffic (messages, delivery attempts, SMTP rejections)."""

import contextlib
import os
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.authz import add_actor_argument, command_actor, require_perm
from dockspace.commandline import ServiceCall, not_found, print_json
from mail.progress import silent, terminal_progress
from monitoring import traffic, traffic_follow
from monitoring.models import LogSource, MailHost

OPTIONS = {"source": "--source"}


def _source_name(options):
    """--source as given; "" when left out (the host's name, else 'local'). Given blank: refused, never the live
    follower's source by accident."""
    name = options.get("source")
    if name is None:
        return ""
    if not name.strip():
        raise CommandError("--source: a name is required; leave --source out to use the --host name, else 'local'.")
    return name


def summary_data(result, *, path, source, seconds):
    return {
        "file": path,
        "source": source.name,
        "lines": result.lines,
        "not_syslog_lines": result.not_syslog,
        "seconds": round(seconds, 3),
        "lines_per_second": round(result.lines / seconds) if seconds > 0 else None,
        "messages": {"new": result.messages_new, "updated": result.messages_updated},
        "attempts": {status: result.attempts.get(status, 0) for status in ("sent", "deferred", "bounced", "expired")},
        "rejections": {"new": result.rejections, "warnings": result.rejection_warnings},
        "other_lines_by_program": dict(result.other_by_program.most_common()),
    }


def summary_lines(data):
    attempts = data["attempts"]
    rate = f", {data['lines_per_second']:,} lines/s" if data["lines_per_second"] else ""
    yield (
        f"Read {data['lines']:,} lines of {data['file']} into log source {data['source']!r} "
        f"({data['seconds']} s{rate})."
    )
    yield f"Messages: {data['messages']['new']:,} new, {data['messages']['updated']:,} updated."
    yield (
        f"Delivery attempts: {sum(attempts.values()):,} new: sent {attempts['sent']:,}, deferred "
        f"{attempts['deferred']:,}, bounced {attempts['bounced']:,}, expired {attempts['expired']:,}."
    )
    yield (
        f"SMTP rejections: {data['rejections']['new']:,} new ({data['rejections']['warnings']:,} of them not refusals: "
        "warnings, HOLD and DISCARD actions)."
    )
    other = data["other_lines_by_program"]
    if other:
        shown = ", ".join(f"{program} {count:,}" for program, count in list(other.items())[:10])
        more = f", and {len(other) - 10} more programs" if len(other) > 10 else ""
        yield f"Other lines by program: {shown}{more}."
    if data["not_syslog_lines"]:
        yield f"Lines that are not syslog lines (skipped): {data['not_syslog_lines']:,}."
    if data["lines"] and data["lines"] == data["not_syslog_lines"]:
        yield "Nothing in it was a syslog line."


class Command(BaseCommand):
    help = (
        "Read mail logs into Dockspace's mail traffic: messages, each delivery attempt with the remote reply, and "
        "refusals at SMTP. `maillog ingest --file PATH` reads a whole file (DMS's /var/log/mail/mail.log, or a "
        "rotated mail.log.1 or mail.log.2.gz), oldest file first; a line already stored is not stored again, so "
        "reading a file twice changes nothing. --host NAME says which mail host wrote it (its log source is then "
        "named after the host); --source NAME names the log source otherwise (default 'local', the file in "
        "DOCKSPACE_MAIL_LOG). A progress bar shows on a terminal; --json prints the summary as JSON. "
        "`maillog follow` reads DOCKSPACE_MAIL_LOG as it is written, across rotations and restarts (the maillog "
        "process); `maillog follow --host NAME` reads a mail host's log over SSH the same way."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        ingest = sub.add_parser(
            "ingest",
            help="Read a whole mail-log file (plain or .gz) into traffic and print a summary.",
            description="Read a whole mail-log file (plain or gzip-compressed) into traffic and print a summary: "
            "lines, messages, delivery attempts by status, SMTP rejections, other lines by program.",
        )
        ingest.add_argument(
            "--file", required=True, metavar="PATH", help="The log file (e.g. mail.log, mail.log.2.gz)."
        )
        ingest.add_argument(
            "--host", metavar="NAME", help="The mail host that wrote it (`manage.py mailhost list` shows them)."
        )
        ingest.add_argument(
            "--source",
            metavar="NAME",
            help="The log source to read it into (default: the --host name, else 'local'). Read an archive under "
            "the same source as the follower that read the live file, so lines both read are stored once.",
        )
        ingest.add_argument("--json", action="store_true", help="Print the summary as JSON.")
        follow = sub.add_parser(
            "follow",
            help="Read the mail log as it is written, until stopped (the maillog process).",
            description="Read the mail log into traffic as it is written, until SIGTERM or Ctrl-C (the batch being "
            "stored is finished first): DOCKSPACE_MAIL_LOG, or with --host the log of a mail host's DMS container "
            "(/var/log/mail/mail.log) over SSH. It goes on where the log source's stored position says (on a first "
            "start: from the top of the file), finishes a rotated mail.log.1 before the new file, and stores each "
            "batch of lines with the position after it in one transaction, so a restart neither loses nor repeats "
            "a line. A batch that cannot be stored is logged and tried again after a pause. Every "
            "DOCKSPACE_MAIL_LOG_POLL seconds (1) it looks for new lines.",
        )
        follow.add_argument(
            "--host", metavar="NAME", help="Follow this mail host's log over SSH (`manage.py mailhost list`)."
        )
        follow.add_argument(
            "--source",
            metavar="NAME",
            help="The log source to read into (default: the --host name, else 'local': DOCKSPACE_MAIL_LOG).",
        )
        for parser in sub.choices.values():
            add_actor_argument(parser)

    def handle(self, *args, action, **options):
        self.actor = command_actor(options)
        # Asked before any file, host or setting is looked at: a refusal tells nothing about what exists.
        with ServiceCall(OPTIONS):
            require_perm(self.actor, traffic.INGEST)
        getattr(self, "_" + action)(options)

    def _ingest(self, o):
        path = o["file"]
        try:
            traffic.check_log_file(path)
        except traffic.LogFileError as exc:
            raise CommandError(f"--file: {exc}") from None
        host = None
        if o["host"] is not None:
            host = MailHost.objects.filter(name=o["host"].strip().lower()).first()
            if host is None:
                raise not_found("--host", "mail host", o["host"])
        with ServiceCall(OPTIONS):
            source = traffic.logsource_for(name=_source_name(o), host=host, actor=self.actor)
        started = time.monotonic()
        with self._progress(path) as on_progress, ServiceCall(OPTIONS):
            try:
                result = traffic.maillog_ingest_file(path, source=source, actor=self.actor, on_progress=on_progress)
            except traffic.LogFileError as exc:
                raise CommandError(f"--file: {exc}") from None
        data = summary_data(result, path=path, source=source, seconds=time.monotonic() - started)
        if o["json"]:
            print_json(self, data)
            return
        for line in summary_lines(data):
            self.stdout.write(line)
        old = traffic.messages_past_retention(source)
        if old:
            self.stderr.write(
                f"warning: {old:,} message(s) of log source {source.name!r} are older than DOCKSPACE_TRAFFIC_DAYS "
                f"({settings.TRAFFIC_DAYS} days): the next prune deletes them, and they are not rolled up."
            )

    def _follow(self, o):
        host = None
        if o["host"] is not None:
            host = MailHost.objects.filter(name=o["host"].strip().lower()).first()
            if host is None:
                raise not_found("--host", "mail host", o["host"])
        elif not settings.DOCKSPACE_MAIL_LOG:
            raise CommandError(
                "DOCKSPACE_MAIL_LOG is not set: set it to the mail log to follow (DMS's /var/log/mail/mail.log, "
                "mounted read-only), or give --host NAME to follow a mail host's log over SSH."
            )
        elif os.path.exists(settings.DOCKSPACE_MAIL_LOG):
            # Not yet there is fine (the follower waits for it); there but not a mail log is a mistake to stop at.
            try:
                traffic.check_log_file(settings.DOCKSPACE_MAIL_LOG)
            except traffic.LogFileError as exc:
                raise CommandError(f"DOCKSPACE_MAIL_LOG: {exc}") from None
        with ServiceCall(OPTIONS):
            source = traffic.logsource_for(name=_source_name(o), host=host, actor=self.actor)
        if host is None and source.kind == LogSource.HOST:
            owner = source.mail_host.name if source.mail_host else "a mail host"
            raise CommandError(
                f"--source: the log source {source.name!r} is the log of {owner}; follow it with --host, or name "
                "another source for DOCKSPACE_MAIL_LOG."
            )
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        poll = settings.DOCKSPACE_MAIL_LOG_POLL
        if host is None:
            traffic_follow.maillog_follow_file(
                source, settings.DOCKSPACE_MAIL_LOG, stop=stop, poll=poll, actor=self.actor
            )
        else:
            traffic_follow.maillog_follow_host(source, host, stop=stop, poll=poll, actor=self.actor)

    def _progress(self, path):
        """A context manager giving on_progress(bytes read) for a bar on a terminal (nothing elsewhere)."""
        progress = terminal_progress(self.stderr._out)
        try:
            total = os.path.getsize(path)
        except OSError:
            total = 0
        if progress is silent or not total:
            return contextlib.nullcontext(None)

        @contextlib.contextmanager
        def bar():
            from tqdm import tqdm

            with tqdm(
                total=total, desc="reading", unit="B", unit_scale=True, file=self.stderr._out, mininterval=0.2
            ) as shown:

                def advance(position):
                    shown.update(max(0, position - shown.n))

                yield advance

        return bar()
