"""manage.py alerts list|ack|silence|unsilence|test-channel|new-webhook-secret."""

from django.core.management.base import BaseCommand, CommandError

from accounts.authz import add_actor_argument, command_actor, command_actor_label
from dockspace.commandline import ServiceCall, describe_actions, not_found, print_json
from monitoring import alert_services, selectors
from monitoring.alert_models import Alert, NotificationChannel
from monitoring.durations import format_duration, parse_duration
from monitoring.standard_webhooks import generate_secret

ACTOR = "manage.py alerts"
ID_HELP = "The alert's id, as `manage.py alerts list` shows it."


def _iso(moment):
    return moment.isoformat() if moment else None


def alert_data(alert):
    return {
        "id": alert.pk,
        "state": alert.state,
        "kind": alert.rule.kind,
        "rule": str(alert.rule),
        "subject": alert.subject,
        "value": alert.value,
        "summary": alert.summary,
        "first_seen_at": _iso(alert.first_seen_at),
        "pending_since": _iso(alert.pending_since),
        "fired_at": _iso(alert.fired_at),
        "resolved_at": _iso(alert.resolved_at),
        "last_notified_at": _iso(alert.last_notified_at),
        "reopen_count": alert.reopen_count,
        "acknowledged_by": str(alert.acknowledged_by) if alert.acknowledged_by else None,
        "acknowledged_at": _iso(alert.acknowledged_at),
        "silenced_until": _iso(alert.silenced_until),
    }


def find_alert(value):
    alert = Alert.objects.select_related("rule").filter(pk=int(value) if value.isdigit() else None).first()
    if alert is None:
        raise not_found("ID", "alert", value)
    return alert


class Command(BaseCommand):
    help = (
        "Dockspace's alerts. `alerts list` shows the open alerts (firing first; --all adds the resolved ones, "
        "--json for scripts); `alerts ack ID` stops an open alert's repeat notifications (the resolved one still "
        "comes); `alerts silence ID --for 2h` sends nothing about it for that long (`alerts unsilence ID` ends "
        "it); `alerts test-channel NAME` sends a test notification through a channel and says whether it arrived; "
        "`alerts new-webhook-secret` prints a fresh signing secret for a webhook channel. Rules and channels are "
        "edited in the admin (Monitoring). Acts as the host; `--as EMAIL` acts with that staff member's "
        "permissions."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = sub.add_parser("list", help="Open alerts, firing first: id, state, rule, subject, since, summary.")
        listing.add_argument("--all", action="store_true", help="Include resolved alerts.")
        listing.add_argument("--json", action="store_true", help="Print a JSON list.")
        ack = sub.add_parser("ack", help="Acknowledge an open alert: no more repeats until it resolves.")
        ack.add_argument("id", metavar="ID", help=ID_HELP)
        silence = sub.add_parser("silence", help="Send nothing about an alert (fired, repeat, resolved) for a while.")
        silence.add_argument("id", metavar="ID", help=ID_HELP)
        silence.add_argument(
            "--for",
            dest="duration",
            required=True,
            metavar="DURATION",
            help="How long: e.g. 30m, 2h, 1d, 1h30m (1 minute to 30 days).",
        )
        unsilence = sub.add_parser("unsilence", help="End an alert's silence now.")
        unsilence.add_argument("id", metavar="ID", help=ID_HELP)
        test = sub.add_parser(
            "test-channel", help="Send a test notification through a channel now; exits 1 if it was not delivered."
        )
        test.add_argument("name", metavar="NAME", help="The channel's name, as the admin lists it.")
        sub.add_parser(
            "new-webhook-secret",
            help="Print a new Standard Webhooks secret (whsec_...): give it to the receiver and to the channel "
            "(admin, or a DOCKSPACE_ALERT_... environment variable).",
        )
        describe_actions(sub)
        for parser_ in (listing, ack, silence, unsilence, test):
            add_actor_argument(parser_)

    def handle(self, *args, action, **options):
        if action == "new-webhook-secret":
            self.stdout.write(generate_secret())
            return
        actor = command_actor(options)
        self.who = {"actor": actor, "actor_label": command_actor_label(ACTOR, actor)}
        getattr(self, "_" + action.replace("-", "_"))(options)

    def _list(self, o):
        if not selectors.may_see_alerts(self.who["actor"]):
            raise CommandError(f"--as: you do not have the permission {selectors.VIEW_PERMISSION!r}.")
        alerts = list(selectors.alerts_for(self.who["actor"], include_resolved=o["all"]))
        if o["json"]:
            return print_json(self, [alert_data(alert) for alert in alerts])
        if not alerts:
            self.stdout.write("No open alerts." if not o["all"] else "No alerts.")
            return
        for alert in alerts:
            notes = []
            if alert.acknowledged_at:
                notes.append(f"acknowledged by {alert.acknowledged_by or 'someone'}")
            if alert.is_silenced():
                notes.append(f"silenced until {alert.silenced_until:%Y-%m-%d %H:%M} UTC")
            since = alert.fired_at if alert.state == Alert.FIRING else alert.pending_since
            if alert.state == Alert.RESOLVED:
                since = alert.resolved_at
            self.stdout.write(
                f"{alert.pk:>6}  {alert.state:<8}  {alert.rule}: {alert.subject}  since {since:%Y-%m-%d %H:%M} UTC"
                + (f"  [{'; '.join(notes)}]" if notes else "")
            )
            if alert.summary:
                self.stdout.write(f"        {alert.summary}")

    def _ack(self, o):
        alert = find_alert(o["id"])
        with ServiceCall({"actor": "--as", "alert": "ID"}):
            alert_services.alert_acknowledge(alert=alert, **self.who)
        self.stdout.write(f"Acknowledged alert {alert.pk} ({alert}): no more repeats until it resolves.")

    def _silence(self, o):
        alert = find_alert(o["id"])
        try:
            seconds = parse_duration(o["duration"])
        except ValueError as exc:
            raise CommandError(f"--for: {exc}") from None
        if seconds == 0:
            raise CommandError("--for: give a duration such as 2h; `alerts unsilence ID` ends a silence.")
        with ServiceCall({"actor": "--as", "seconds": "--for"}):
            alert = alert_services.alert_silence(alert=alert, seconds=seconds, **self.who)
        self.stdout.write(
            f"Silenced alert {alert.pk} ({alert}) for {format_duration(seconds)}, until "
            f"{alert.silenced_until:%Y-%m-%d %H:%M} UTC."
        )

    def _unsilence(self, o):
        alert = find_alert(o["id"])
        with ServiceCall({"actor": "--as"}):
            alert_services.alert_silence(alert=alert, seconds=0, **self.who)
        self.stdout.write(f"Alert {alert.pk} ({alert}) is no longer silenced.")

    def _test_channel(self, o):
        channel = NotificationChannel.objects.filter(name__iexact=o["name"].strip()).first()
        if channel is None:
            names = ", ".join(NotificationChannel.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"NAME: no notification channel {o['name']!r} (channels: {names}).")
        with ServiceCall({"actor": "--as"}):
            outcome = alert_services.channel_send_test(channel=channel, **self.who)
        if not outcome.is_sent:
            raise CommandError(outcome.text)
        self.stdout.write(outcome.text)
