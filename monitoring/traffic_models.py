"""Mail traffic read from the mail logs (issue "Mail traffic"): where lines come from and how far they were read
(LogSource), the messages they tell of (MailMessage), each delivery attempt per recipient (DeliveryAttempt) and the
refusals at SMTP (SmtpRejection). Written by monitoring.traffic only; nothing from a message body is stored.
Imported by monitoring.models."""

from django.db import models
from django.db.models import Q

from monitoring.maillog import correlate

# Postfix queue ids: 10-12 hex digits, or up to 17 characters with enable_long_queue_ids.
QUEUE_ID_MAX_LENGTH = 20
ADDRESS_MAX_LENGTH = 320  # an envelope address as logged (a VERP sender can exceed 254)
REPLY_MAX_LENGTH = 500
LINE_KEY_LENGTH = 32  # hex of a 16-byte blake2b
SOURCE_NAME_MAX_LENGTH = 100
PROGRAM_MAX_LENGTH = 64  # a syslog tag: "postfix/submissions/smtpd", "postfix/out-2001-db8--1/smtp"


class LogSource(models.Model):
    """A mail log read into traffic: a file on the Dockspace machine, or a mail host's log over SSH. Holds the
    follower's checkpoint (the file it reads, its identity, and the byte offset after the last line stored), moved
    in the same transaction as the rows of each batch, so a restart neither loses nor repeats a line."""

    FILE, HOST = "file", "host"
    KINDS = [(FILE, "file"), (HOST, "mail host")]

    name = models.CharField(
        max_length=SOURCE_NAME_MAX_LENGTH,
        unique=True,
        help_text="How Dockspace calls this log (the mail host's name, or 'local' for DOCKSPACE_MAIL_LOG); part of "
        "each stored line's key, so a line read twice under the same name is stored once.",
    )
    kind = models.CharField(max_length=10, choices=KINDS, default=FILE)
    mail_host = models.ForeignKey(
        "monitoring.MailHost", null=True, blank=True, on_delete=models.SET_NULL, related_name="log_sources"
    )
    # The checkpoint (monitoring.maillog.follow.Checkpoint).
    path = models.CharField(max_length=4096, blank=True, help_text="The file read last.")
    device = models.BigIntegerField(default=0)
    inode = models.BigIntegerField(default=0)
    head = models.CharField(
        max_length=64, blank=True, help_text="sha256 (hex) of the file's first line, up to 4 KiB: tells a new file."
    )
    position = models.BigIntegerField(default=0, help_text="Byte offset just after the last complete line stored.")
    lines_read = models.BigIntegerField(default=0)
    events_other = models.BigIntegerField(default=0, help_text="Lines read that tell nothing about a message.")
    last_read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The follower that holds the source (one at a time: monitoring.traffic.claim_logsource), renewed while it runs.
    follower = models.CharField(
        max_length=200, blank=True, help_text="The follower reading this source: its process and machine."
    )
    follower_token = models.CharField(max_length=64, blank=True, editable=False)
    follower_seen_at = models.DateTimeField(
        null=True, blank=True, help_text="When the follower last said it was running."
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "mail log source"

    def __str__(self):
        return self.name


class MailMessage(models.Model):
    """One message as the log tells it, tied together by its queue id from the line that opened it (smtpd's
    client=, pickup) to qmgr's `removed`. A queue id used again after removal is another message."""

    # The correlator (pure code) decides them: its names, declared once.
    IN, OUT = correlate.IN, correlate.OUT
    DIRECTIONS = [(IN, "received"), (OUT, "sent")]
    QUEUED, DELIVERED, DEFERRED, BOUNCED, EXPIRED, MIXED, REJECTED, HELD, DISCARDED = (
        correlate.QUEUED,
        correlate.DELIVERED,
        correlate.DEFERRED,
        correlate.BOUNCED,
        correlate.EXPIRED,
        correlate.MIXED,
        correlate.REJECTED,
        correlate.HELD,
        correlate.DISCARDED,
    )
    STATES = [
        (QUEUED, "queued"),
        (DELIVERED, "delivered"),
        (DEFERRED, "deferred"),
        (BOUNCED, "bounced"),
        (EXPIRED, "expired"),
        (MIXED, "mixed"),
        (REJECTED, "rejected"),
        (HELD, "held"),
        (DISCARDED, "discarded"),
    ]

    # Indexed with last_seen_at below (what each batch looks up), which serves lookups by source alone too.
    source = models.ForeignKey(LogSource, on_delete=models.CASCADE, related_name="messages", db_index=False)
    queue_id = models.CharField("queue ID", max_length=QUEUE_ID_MAX_LENGTH)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    sender = models.CharField(
        max_length=ADDRESS_MAX_LENGTH, blank=True, help_text="The envelope sender; empty for a bounce."
    )
    size = models.BigIntegerField(null=True, blank=True, help_text="Bytes, as the queue manager counts them.")
    nrcpt = models.PositiveIntegerField("recipients", null=True, blank=True)
    message_id = models.CharField("Message-ID", max_length=255, blank=True)
    sasl_username = models.CharField("SASL user", max_length=ADDRESS_MAX_LENGTH, blank=True)
    client_host = models.CharField(max_length=253, blank=True)
    client_ip = models.GenericIPAddressField("client IP", null=True, blank=True)
    direction = models.CharField(
        max_length=3,
        choices=DIRECTIONS,
        blank=True,
        help_text="Sent: submitted by a signed-in user (SASL), picked up on the host, or a notification Postfix wrote. "
        "Received: from another server. Empty: the log did not show where it came from.",
    )
    state = models.CharField(max_length=10, choices=STATES, default=QUEUED)
    removed_at = models.DateTimeField(null=True, blank=True, help_text="When it left the queue.")
    received_by = models.CharField(
        max_length=PROGRAM_MAX_LENGTH,
        blank=True,
        help_text="The program whose line took it in: postfix/smtpd (port 25), postfix/submission/smtpd (587), "
        "postfix/submissions/smtpd (465), postfix/pickup (the host itself). Empty for a notification Postfix wrote, "
        "or when that line is not in the log.",
    )
    line_key = models.CharField(max_length=LINE_KEY_LENGTH, unique=True, help_text="Key of the line that opened it.")
    notification_of_key = models.CharField(
        max_length=LINE_KEY_LENGTH,
        blank=True,
        help_text="For a notification Postfix wrote (non-delivery, delay): the key of the message it tells of, from "
        "the bounce daemon's `QID: sender non-delivery notification: NEWQID` line.",
    )

    class Meta:
        ordering = ["-first_seen_at", "-id"]
        verbose_name = "mail message"
        indexes = [
            models.Index(fields=["queue_id", "first_seen_at"], name="mailmessage_queue_id"),
            models.Index(fields=["sender"], name="mailmessage_sender"),
            models.Index(fields=["message_id"], name="mailmessage_message_id"),
            models.Index(fields=["first_seen_at"], name="mailmessage_first_seen"),
            models.Index(
                fields=["notification_of_key"], condition=~Q(notification_of_key=""), name="mailmessage_notification"
            ),
            # Each batch of lines looks up the messages it may continue: those seen since its first line, and
            # those still in the queue (a partial index: few rows however long the history).
            models.Index(fields=["source", "last_seen_at"], name="mailmessage_last_seen"),
            models.Index(
                fields=["source", "last_seen_at"], condition=Q(removed_at__isnull=True), name="mailmessage_open"
            ),
        ]

    def __str__(self):
        return f"{self.queue_id} from <{self.sender}>"


class DeliveryAttempt(models.Model):
    """One try at delivering a message to one recipient (one `to=... status=...` line), or the recipients still
    waiting when the message expired."""

    SENT, DEFERRED, BOUNCED, EXPIRED = "sent", "deferred", "bounced", "expired"
    STATUSES = [(SENT, "sent"), (DEFERRED, "deferred"), (BOUNCED, "bounced"), (EXPIRED, "expired")]

    message = models.ForeignKey(MailMessage, on_delete=models.CASCADE, related_name="attempts")
    at = models.DateTimeField()
    recipient = models.CharField(max_length=ADDRESS_MAX_LENGTH)
    orig_recipient = models.CharField("original recipient", max_length=ADDRESS_MAX_LENGTH, blank=True)
    relay = models.CharField(max_length=255, blank=True, help_text="host[ip]:port, or none, local, virtual...")
    service = models.CharField(
        max_length=64, blank=True, help_text="The Postfix transport (smtp, lmtp, out-192-0-2-10)."
    )
    sending_ip = models.GenericIPAddressField(
        "sending IP", null=True, blank=True, help_text="The pooled IP the transport sends from (its out-* name)."
    )
    delay = models.FloatField(null=True, blank=True, help_text="Seconds from arrival to this attempt's end.")
    delays = models.CharField(max_length=64, blank=True, help_text="before queue / in queue / connect / transfer")
    dsn = models.CharField("DSN", max_length=16, blank=True)
    status = models.CharField(max_length=10, choices=STATUSES)
    reply = models.CharField(
        max_length=REPLY_MAX_LENGTH, blank=True, help_text="The remote reply, or Postfix's reason."
    )
    line_key = models.CharField(max_length=LINE_KEY_LENGTH, unique=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = "delivery attempt"
        indexes = [
            models.Index(fields=["recipient"], name="deliveryattempt_recipient"),
            models.Index(fields=["at"], name="deliveryattempt_at"),
            models.Index(fields=["sending_ip", "at"], name="deliveryattempt_sending_ip"),
        ]

    def __str__(self):
        return f"{self.recipient} {self.status}"


# What an SmtpRejection's action did to the mail; anything else refused it.
REJECTION_OUTCOMES = {
    "warn": "warned",
    "reject_warning": "warned",
    "warning": "warned",
    "hold": "held",
    "milter-hold": "held",
    "discard": "discarded",
    "milter-discard": "discarded",
}


def rejection_outcome(action: str) -> str:
    """ "refused", "warned" (logged only), "held" (kept in the hold queue) or "discarded" (accepted, dropped)."""
    return REJECTION_OUTCOMES.get(action, "refused")


class SmtpRejection(models.Model):
    """A refusal at SMTP (smtpd restrictions, milters, header/body checks, postscreen), or a warning logged
    instead of one (warn, reject_warning), or a HOLD or DISCARD action (the client was told the mail was queued):
    the client, the envelope and the reply it got. A HOLD or DISCARD smtpd logs before the queue file exists
    (NOQUEUE) is filed under the message smtpd opened right after it."""

    source = models.ForeignKey(LogSource, on_delete=models.CASCADE, related_name="rejections")
    at = models.DateTimeField()
    queue_id = models.CharField("queue ID", max_length=QUEUE_ID_MAX_LENGTH, blank=True, help_text="Empty: NOQUEUE.")
    stage = models.CharField(
        max_length=20, help_text="CONNECT, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE, header, body, postscreen."
    )
    code = models.PositiveSmallIntegerField(null=True, blank=True)
    dsn = models.CharField("DSN", max_length=16, blank=True)
    reply = models.CharField(max_length=REPLY_MAX_LENGTH, blank=True)
    client_host = models.CharField(max_length=253, blank=True)
    client_ip = models.GenericIPAddressField("client IP", null=True, blank=True)
    sender = models.CharField(max_length=ADDRESS_MAX_LENGTH, blank=True)
    recipient = models.CharField(max_length=ADDRESS_MAX_LENGTH, blank=True)
    helo = models.CharField("HELO", max_length=255, blank=True)
    is_warning = models.BooleanField(
        default=False, help_text="Not refused: logged only (warn, reject_warning), or held or discarded."
    )
    program = models.CharField(
        max_length=PROGRAM_MAX_LENGTH, blank=True, help_text="The syslog tag: postfix/smtpd, postfix/cleanup..."
    )
    action = models.CharField(
        max_length=20,
        blank=True,
        help_text="reject, reject_warning, warn, milter-reject, hold, discard (also milter-), or cleanup's warning.",
    )
    line_key = models.CharField(max_length=LINE_KEY_LENGTH, unique=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "SMTP rejection"
        indexes = [
            models.Index(fields=["at"], name="smtprejection_at"),
            models.Index(fields=["client_ip", "at"], name="smtprejection_client_ip"),
            models.Index(fields=["recipient"], name="smtprejection_recipient"),
        ]

    def __str__(self):
        return f"{self.stage} {self.code or ''} {self.client_ip or self.client_host}".strip()

    @property
    def outcome(self) -> str:
        return rejection_outcome(self.action)


# --- rollups (monitoring.traffic_rollups writes them; monitoring.traffic_stats reads them) ------------------------
# The raw rows above are kept DOCKSPACE_TRAFFIC_DAYS; these sums of them 90 days. One row per bucket (the hour or the
# day's start, UTC), dimension, key, direction and measure, upserted when the bucket is rolled up again.

ROLLUP_KEY_MAX_LENGTH = 255


class TrafficRollup(models.Model):
    """A count (or a sum of bytes or milliseconds) of the raw traffic in one bucket. `dimension` "" holds the totals
    by direction ("in", "out", "" when unknown) and `measure` (received, delivered_local, deferrals, rejected,
    bytes_received...); "delay" holds the delivery-delay histogram (key "local"/"remote", measures le_<seconds>,
    sum_ms, count); the daily rollups also hold the breakdowns (sender_domain, recipient_domain, remote, sasl, ip,
    reason: key is the domain, site, SASL user, sending IP or reason, direction "")."""

    bucket = models.DateTimeField()
    dimension = models.CharField(max_length=20, blank=True)
    key = models.CharField(max_length=ROLLUP_KEY_MAX_LENGTH, blank=True)
    direction = models.CharField(max_length=3, blank=True)
    measure = models.CharField(max_length=30)
    value = models.BigIntegerField(default=0)

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.bucket:%Y-%m-%d %H:%M} {self.dimension}:{self.key} {self.direction} {self.measure}={self.value}"


class TrafficHourly(TrafficRollup):
    """The hour's totals by direction and measure, and its delivery-delay histogram (90 days)."""

    class Meta:
        ordering = ["bucket", "id"]
        verbose_name = "hourly traffic rollup"
        constraints = [
            models.UniqueConstraint(
                fields=["bucket", "dimension", "key", "direction", "measure"], name="traffichourly_unique"
            )
        ]


class TrafficDaily(TrafficRollup):
    """The day's totals and breakdowns (90 days)."""

    class Meta:
        ordering = ["bucket", "id"]
        verbose_name = "daily traffic rollup"
        constraints = [
            models.UniqueConstraint(
                fields=["bucket", "dimension", "key", "direction", "measure"], name="trafficdaily_unique"
            )
        ]
        indexes = [models.Index(fields=["dimension", "bucket"], name="trafficdaily_dimension")]


class TrafficTally(models.Model):
    """What the hourly rollups held before they were pruned (90 days), by dimension, key, direction and measure:
    added to what is still kept, it makes the Prometheus counters (dockspace_mail_messages_total, the delay
    histogram) that never go down."""

    dimension = models.CharField(max_length=20, blank=True)
    key = models.CharField(max_length=ROLLUP_KEY_MAX_LENGTH, blank=True)
    direction = models.CharField(max_length=3, blank=True)
    measure = models.CharField(max_length=30)
    value = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "traffic tally"
        constraints = [
            models.UniqueConstraint(fields=["dimension", "key", "direction", "measure"], name="traffictally_unique")
        ]

    def __str__(self):
        return f"{self.dimension}:{self.key} {self.direction} {self.measure}={self.value}"


class TrafficRollupState(models.Model):
    """One row: how far the rollups got. `counted_until` is the start of the hour the last run was in: the hourly
    rollups before it are complete, what came after is read from the raw rows. The highest ids seen by the last two
    runs tell which older days got new rows since (an archive ingested late): those days are rolled up again."""

    counted_until = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    message_id_seen = models.BigIntegerField("message ID seen", default=0)
    attempt_id_seen = models.BigIntegerField("attempt ID seen", default=0)
    rejection_id_seen = models.BigIntegerField("rejection ID seen", default=0)
    message_id_seen_before = models.BigIntegerField("message ID seen before", default=0)
    attempt_id_seen_before = models.BigIntegerField("attempt ID seen before", default=0)
    rejection_id_seen_before = models.BigIntegerField("rejection ID seen before", default=0)

    class Meta:
        verbose_name = "traffic rollup state"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="trafficrollupstate_single_row")]

    def __str__(self):
        return f"traffic rolled up until {self.counted_until}"


# --- Postfix past the policy service (monitoring.policy_unreachable reads them) ------------------------------------

POLICY_SERVER_MAX_LENGTH = 255


class PolicyUnreachableHourly(models.Model):
    """smtpd's `warning: problem talking to server HOST:PORT: REASON` lines about a policy service, counted per log
    source, server and UTC hour: each one is a query that got no answer, after which Postfix applies the check's
    default_action (DUNNO: the message goes on unlimited). One row per hour that had any, kept (a few rows: they make
    a Prometheus counter that never goes down). A line at or before the latest one counted in its row is taken as
    read already (an archive ingested after the follower read the same lines)."""

    source = models.ForeignKey(LogSource, on_delete=models.CASCADE, related_name="policy_unreachable")
    server = models.CharField(max_length=POLICY_SERVER_MAX_LENGTH, help_text="As Postfix names it: HOST:PORT.")
    hour = models.DateTimeField(help_text="The start of the UTC hour.")
    count = models.BigIntegerField(default=0)
    last_at = models.DateTimeField(help_text="The latest line counted.")
    last_reason = models.CharField(
        max_length=200, blank=True, help_text="Its reason: Connection refused, Connection timed out..."
    )

    class Meta:
        ordering = ["-hour", "source", "server"]
        verbose_name = "policy service unreachable (hourly)"
        verbose_name_plural = "policy service unreachable (hourly)"
        constraints = [
            models.UniqueConstraint(fields=["source", "server", "hour"], name="policyunreachable_unique"),
        ]
        indexes = [models.Index(fields=["last_at"], name="policyunreachable_last_at")]

    def __str__(self):
        return f"{self.source_id} {self.server} {self.hour:%Y-%m-%d %H:00}: {self.count}"
