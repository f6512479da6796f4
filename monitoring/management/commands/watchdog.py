"""manage.py watchdog [--interval N] [--once]: the watchdog process (monitoring.watchdog)."""

import argparse
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from monitoring.watchdog import Watchdog


def seconds(value):
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of seconds, at least 1; got {value!r}")
    return int(value)


class Command(BaseCommand):
    help = (
        "Report a stopped Celery worker or beat without them: every DOCKSPACE_WATCHDOG_INTERVAL seconds (60), "
        "record the watchdog's heartbeat, evaluate the alert rules 'Celery worker silent' and 'Celery beat "
        "silent', and send their notifications from this process (webhook, Telegram, and email straight to the "
        "SMTP server). The first two rounds only record the heartbeat, so a worker and beat started at the same "
        "time can show up. Runs until SIGTERM or Ctrl-C; `make run` and the `watchdog` container start it. A round "
        "that fails (database unreachable) is logged and the next one comes as usual. --once does one full round "
        "at once and exits (1 if it failed)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--interval",
            type=seconds,
            metavar="N",
            help="Seconds between rounds (default: DOCKSPACE_WATCHDOG_INTERVAL, 60).",
        )
        parser.add_argument("--once", action="store_true", help="Do one round, print what it did, and exit.")

    def handle(self, *args, interval=None, once=False, **options):
        interval = interval or settings.DOCKSPACE_WATCHDOG_INTERVAL
        if once:
            watchdog = Watchdog(interval, quiet_rounds=0)
            done = watchdog.run_once()
            if done is None:
                raise CommandError(f"the round failed: {watchdog.failure}")
            self.stdout.write(done.summary())
            return
        watchdog = Watchdog(interval)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: watchdog.stop.set())
        watchdog.run_forever()
