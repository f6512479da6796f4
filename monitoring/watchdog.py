"""The watchdog (`manage.py watchdog`, a process of its own): reports a Celery worker or beat that stopped, which
the normal evaluation cannot (the worker runs it, on beat's schedule, and sends its notifications). Each round
records the watchdog's heartbeat, evaluates the "worker silent" and "beat silent" rules, and sends their
notifications from this process: webhook and Telegram directly, email through the outbox delivered here. Nothing
goes through Celery or its broker; the worker's own evaluation watches the watchdog ("Watchdog silent")."""

import logging
import threading
from dataclasses import dataclass, field

from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from accounts import outbox, outbox_delivery
from monitoring import alert_services, heartbeats
from monitoring.alert_kinds import BEAT_SILENT, WORKER_SILENT
from monitoring.alert_models import AlertEvent
from monitoring.models import Heartbeat

log = logging.getLogger(__name__)

WATCHED_KINDS = (WORKER_SILENT, BEAT_SILENT)
# A worker and beat started with the watchdog (`make run`, `docker compose up`) get this many rounds to show up
# before it judges them: until they record a heartbeat, theirs is the one from before the restart.
QUIET_ROUNDS = 2


@dataclass
class Round:
    evaluation: alert_services.Evaluation
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    mail_waiting: list[int] = field(default_factory=list)  # outbox ids this watchdog still has to send

    @property
    def is_eventful(self):
        return bool(self.evaluation.fired or self.evaluation.resolved or self.sent or self.failed or self.retrying)

    def summary(self):
        evaluation = self.evaluation
        text = (
            f"{len(evaluation.fired)} fired, {len(evaluation.resolved)} resolved; notifications: "
            f"{self.sent} sent, {self.failed} failed, {self.retrying} to retry"
        )
        if self.mail_waiting:
            text += f"; {len(self.mail_waiting)} mail(s) waiting for another attempt"
        return text + (f"; {'; '.join(evaluation.errors)}" if evaluation.errors else "")


def watchdog_round(*, mail_waiting=(), evaluate=True, now=None):
    """One round: heartbeat, evaluation of the worker and beat rules (unless `evaluate` is false), their due
    notifications sent here (the claim in notification_send keeps a worker from sending one twice), then the mail of
    earlier rounds that is due for another attempt. `mail_waiting`: what the previous round returned in
    Round.mail_waiting."""
    now = now or timezone.now()
    heartbeats.heartbeat_record(Heartbeat.WATCHDOG, now=now)
    evaluation = alert_services.alerts_evaluate(now=now, kinds_only=WATCHED_KINDS) if evaluate else None
    result = Round(evaluation or alert_services.Evaluation())
    mail = list(mail_waiting)
    for event_id in alert_services.notifications_due(kinds=WATCHED_KINDS):
        with outbox.delivered_here() as stored:
            outcome = alert_services.notification_send(event_id=event_id)
        if outcome.status == AlertEvent.SENT:
            result.sent += 1
            # Handed to the outbox and sent at once; one the SMTP server did not take is tried again below.
            mail += [message_id for message_id in stored if message_id not in mail]
        elif outcome.status == AlertEvent.FAILED:
            result.failed += 1
        elif outcome.status == AlertEvent.QUEUED:
            result.retrying += 1
    result.mail_waiting = outbox_delivery.outbound_messages_deliver(mail) if mail else []
    return result


def _one_line(exc):
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class Watchdog:
    """Rounds every `interval` seconds until `stop` is set; the first `quiet_rounds` evaluate nothing. A failed round
    is logged in one line (with its traceback only when it is not a database error), once while it keeps failing the
    same way; the next one comes as usual."""

    def __init__(self, interval, stop=None, quiet_rounds=QUIET_ROUNDS):
        self.interval = interval
        self.stop = stop or threading.Event()
        self.quiet_rounds = quiet_rounds
        self.rounds = 0
        self.mail_waiting = []
        self.failure = None  # why the last round failed, in one line; None when it worked
        self._exc_info = None

    def run_once(self):
        """One round: its Round, or None when it failed (self.failure says why)."""
        self.rounds += 1
        try:
            done = watchdog_round(mail_waiting=self.mail_waiting, evaluate=self.rounds > self.quiet_rounds)
        except DatabaseError as exc:
            self._failed(exc, with_traceback=False)
            return None
        except Exception as exc:  # a bug must not stop the one process that reports a stopped worker
            self._failed(exc, with_traceback=True)
            return None
        self.failure = None
        self.mail_waiting = done.mail_waiting
        return done

    def _failed(self, exc, with_traceback):
        self.failure = _one_line(exc)
        self._exc_info = exc if with_traceback else None

    def run_forever(self):
        log.info(
            "the watchdog starts: every %d s (from round %d on), evaluating %s and sending their notifications",
            self.interval,
            self.quiet_rounds + 1,
            " and ".join(WATCHED_KINDS),
        )
        logged_failure = None
        while not self.stop.is_set():
            close_old_connections()  # a connection the database dropped (or broke) is not used again
            done = self.run_once()
            close_old_connections()
            if done is None and self.failure != logged_failure:
                log.warning(
                    "a round failed (%s); trying again every %d s", self.failure, self.interval, exc_info=self._exc_info
                )
            elif done is not None and logged_failure is not None:
                log.info("rounds work again")
            logged_failure = self.failure
            if done is not None and (done.is_eventful or done.evaluation.errors):
                log.info("round: %s", done.summary())
            self.stop.wait(self.interval)
        log.info("the watchdog stopped")
