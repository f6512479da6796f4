"""What the mail-traffic pages read and show (issue "Mail traffic"): the admin's message search, one message's story
(its delivery attempts in time order, its refusal at SMTP, the bounce notifications Postfix wrote about it), and a
mailbox's last 30 days (messages sent and received, its last bounces) as panels on the mailbox's admin page and on
its owner's profile. Read only; what takes an actor returns only what that actor may see."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.authz import Actor, require_perm
from mail.models import Mailbox
from monitoring.traffic_models import DeliveryAttempt, MailMessage, SmtpRejection
from monitoring.traffic_stats import messages_named_by

VIEW_MESSAGES = "monitoring.view_mailmessage"
MAILBOX_DAYS = 30
MAILBOX_BOUNCES = 10
FAILED = (DeliveryAttempt.BOUNCED, DeliveryAttempt.EXPIRED)


# --- search ------------------------------------------------------------------------------------------------------


SEARCH_WORDS_MAX = 10


def message_search(actor: Actor, queryset: QuerySet[MailMessage], term: str) -> QuerySet[MailMessage]:
    """The messages of `queryset` an operator means by `term`: each word an envelope sender, a recipient of any
    delivery attempt, a queue ID or a Message-ID (angle brackets optional), matched whole so that each is one index
    lookup however long the history; addresses also in lower case, queue IDs also in upper case. Several words: the
    messages that match all of them (`alice@example.com bob@example.net`: from Alice to Bob). `<>`: bounces. A
    message held, discarded or refused before any delivery is found by the recipient its refusal names. For who may
    view messages."""
    require_perm(actor, VIEW_MESSAGES)
    # A search is a few addresses or ids: words past the first 10 are ignored (each is a subquery, and a thousand
    # of them overflow SQLite's expression depth); NUL, which no address holds and PostgreSQL refuses, is dropped.
    for word in term.replace("\x00", "").split()[:SEARCH_WORDS_MAX]:
        bare = word.strip("<>")
        if not bare:
            queryset = queryset.filter(sender="")
            continue
        addresses = {bare, bare.lower()}
        messages = MailMessage.objects.order_by().values("pk")
        # One index lookup each, their ids together: an OR of them would read every message instead.
        named = messages_named_by(SmtpRejection.objects.filter(recipient__in=addresses))
        found = messages.filter(sender__in=addresses).union(
            messages.filter(queue_id__in={word, word.upper()}),
            messages.filter(message_id=bare),
            DeliveryAttempt.objects.filter(recipient__in=addresses).order_by().values("message_id"),
            *([messages.filter(named)] if named else []),
            all=True,
        )
        queryset = queryset.filter(pk__in=found)
    return queryset


# --- one message -------------------------------------------------------------------------------------------------


@dataclass
class MessageStory:
    """One message from its arrival to its end: each delivery attempt (per recipient, per try) in time order, the
    refusal that ended it at SMTP, the bounce notifications Postfix sent its sender and, for a notification, the
    message it tells of."""

    message: MailMessage
    attempts: list[DeliveryAttempt]
    rejections: list[SmtpRejection]
    notifications: list[MailMessage] = field(default_factory=list)
    notification_of: MailMessage | None = None


def message_story(actor: Actor, message: MailMessage) -> MessageStory:
    """What the message's admin page shows. For who may view messages."""
    require_perm(actor, VIEW_MESSAGES)
    attempts = list(message.attempts.order_by("at", "id"))
    # Refusals of a recipient, warnings, a HOLD or DISCARD, the refusal that ended it: logged with its queue id.
    rejections = list(
        SmtpRejection.objects.filter(
            source_id=message.source_id,
            queue_id=message.queue_id,
            at__gte=message.first_seen_at,
            at__lte=message.last_seen_at,
        ).order_by("at", "id")
    )
    story = MessageStory(message, attempts, rejections)
    # Tied by the bounce daemon's `QID: sender non-delivery notification: NEWQID` line (the correlator keeps it).
    story.notifications = list(
        MailMessage.objects.filter(source_id=message.source_id, notification_of_key=message.line_key).order_by(
            "first_seen_at", "id"
        )
    )
    if message.notification_of_key:
        story.notification_of = MailMessage.objects.filter(line_key=message.notification_of_key).first()
    return story


# --- a mailbox's last 30 days ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bounce:
    """A recipient given up: when, the message's sender, the recipient, bounced or expired, and the reason: the
    remote reply, or for an expired message the reply to its last try (Postfix's own words say only "expired")."""

    at: datetime
    message_id: int
    sender: str
    recipient: str
    status: str
    dsn: str
    reply: str


@dataclass(frozen=True)
class MailboxTraffic:
    """A mailbox's mail over the last `days` days: messages it sent (as envelope sender), messages delivered to it,
    and its last bounces: mail it sent that bounced or expired, and mail to it refused (a full mailbox)."""

    address: str
    days: int
    sent: int
    received: int
    bounces: list[Bounce]
    since: datetime | None = None  # when the mailbox was made, if that is within the days (nothing before it shown)


def may_view_mailbox_traffic(actor: Actor, mailbox: Mailbox) -> bool:
    """Staff who may view messages see every mailbox's traffic; a person sees their own mailbox's."""
    if not actor.is_authenticated:
        return False
    return actor.has_perm(VIEW_MESSAGES) or (actor.pk is not None and mailbox.person_id == actor.pk)


def mailbox_traffic(*, actor: Actor, mailbox: Mailbox, now: datetime | None = None) -> MailboxTraffic | None:
    """The mailbox's last MAILBOX_DAYS days, or None for an actor who may not see it."""
    if not may_view_mailbox_traffic(actor, mailbox):
        return None
    # Not before the mailbox was made: an address given again to someone else does not show its last owner's mail.
    window = (now or timezone.now()) - timedelta(days=MAILBOX_DAYS)
    since = max(window, mailbox.created_at)
    addresses = {mailbox.address, mailbox.address.lower()}
    sent = (
        MailMessage.objects.filter(sender__in=addresses, first_seen_at__gte=since)
        .exclude(direction=MailMessage.IN)  # a stranger's mail in the mailbox's name
        .count()
    )
    received = (
        DeliveryAttempt.objects.filter(recipient__in=addresses, status=DeliveryAttempt.SENT, at__gte=since)
        .values("message_id")
        .distinct()
        .count()
    )
    made = since if since > window else None
    return MailboxTraffic(mailbox.address, MAILBOX_DAYS, sent, received, _last_bounces(addresses, since), made)


def _last_bounces(addresses: set[str], since: datetime) -> list[Bounce]:
    failed = DeliveryAttempt.objects.filter(status__in=FAILED, at__gte=since).select_related("message")
    newest = ("-at", "-id")
    # Two index scans (by the message's sender, by the recipient) rather than one OR across the join.
    bounced_out = failed.filter(message__sender__in=addresses).exclude(message__direction=MailMessage.IN)
    bounced_in = failed.filter(recipient__in=addresses)
    found = {
        a.pk: a
        for a in [*bounced_out.order_by(*newest)[:MAILBOX_BOUNCES], *bounced_in.order_by(*newest)[:MAILBOX_BOUNCES]]
    }
    attempts = sorted(found.values(), key=lambda a: (a.at, a.pk), reverse=True)[:MAILBOX_BOUNCES]
    expired = [a for a in attempts if a.status == DeliveryAttempt.EXPIRED]
    last_try: dict[tuple[int, str], str] = {}
    if expired:
        tries = DeliveryAttempt.objects.filter(
            message_id__in={a.message_id for a in expired}, status=DeliveryAttempt.DEFERRED
        ).order_by("at", "id")
        for message_id, recipient, reply in tries.values_list("message_id", "recipient", "reply"):
            last_try[(message_id, recipient)] = reply
    bounces = []
    for a in attempts:
        reply = a.reply
        if a.status == DeliveryAttempt.EXPIRED and (a.message_id, a.recipient) in last_try:
            reply = f"Given up after retrying; last reply: {last_try[(a.message_id, a.recipient)]}"
        bounces.append(Bounce(a.at, a.message_id, a.message.sender, a.recipient, a.status, a.dsn, reply))
    return bounces


# --- panels (mail's and accounts' seams, through monitoring.apps) ------------------------------------------------


def mailbox_admin_panel(request: HttpRequest, mailbox: Mailbox) -> str:
    """The "Mail in the last 30 days" panel on the mailbox's admin page ("" for those who may not see it)."""
    traffic = mailbox_traffic(actor=request.user, mailbox=mailbox)
    if traffic is None:
        return ""
    may_open = request.user.has_perm(VIEW_MESSAGES)
    messages_url = reverse("admin:monitoring_mailmessage_changelist") if may_open else ""
    return render_to_string(
        "admin/monitoring/traffic/mailbox_panel.html",
        {"traffic": traffic, "may_open": may_open, "messages_url": messages_url},
        request=request,
    )


def profile_panel(request: HttpRequest) -> str:
    """The same on the signed-in person's profile, for their own mailbox only ("" without one)."""
    mailbox = Mailbox.objects.filter(person_id=request.user.pk).first()
    traffic = mailbox_traffic(actor=request.user, mailbox=mailbox) if mailbox is not None else None
    if traffic is None:
        return ""
    return render_to_string("monitoring/traffic/profile_panel.html", {"traffic": traffic}, request=request)
