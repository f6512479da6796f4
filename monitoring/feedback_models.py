"""Bounces and complaints that came back by mail (issue "Sending policy"): one FeedbackEvent per recipient of a
delivery status notification (DSN) or abuse report (ARF), classified by monitoring.feedback_reports and tied to the
message we sent and the IP it left from. Written by monitoring.feedback only. Also the outbound webhooks that forward
them (FeedbackWebhook) and their delivery log (FeedbackWebhookDelivery, monitoring.feedback_webhooks). Imported by
monitoring.models."""

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from monitoring import channel_secrets
from monitoring import feedback_reports as reports
from monitoring.alert_models import webhook_url_problem
from monitoring.traffic_models import ADDRESS_MAX_LENGTH, QUEUE_ID_MAX_LENGTH, REPLY_MAX_LENGTH, MailMessage

DIGEST_LENGTH = 64  # sha256, hex
SOURCE_MAX_LENGTH = 200
REASON_MAX_LENGTH = 300


class FeedbackEvent(models.Model):
    """One recipient's bounce or complaint as a report told it, or a message in the feedback mailbox that is
    neither (kind `other`, with the reason). The raw message is not kept: its digest makes a message read twice
    (the same file piped again, a mailbox read again) change nothing."""

    HARD, SOFT, COMPLAINT, OTHER = reports.HARD, reports.SOFT, reports.COMPLAINT, reports.OTHER
    KINDS = [(HARD, "hard bounce"), (SOFT, "soft bounce"), (COMPLAINT, "complaint"), (OTHER, "other")]

    received_at = models.DateTimeField(help_text="When Dockspace read the report.")
    source = models.CharField(
        max_length=SOURCE_MAX_LENGTH,
        help_text="Where it was read from: stdin, a file, an mbox or maildir, or the feedback mailbox.",
    )
    kind = models.CharField(
        max_length=10,
        choices=KINDS,
        help_text="Hard: a permanent failure (5.x.x, except a full mailbox, 5.2.2). Soft: delayed, a full mailbox, or "
        "expired after temporary errors. Complaint: an abuse, fraud or virus report. Other: anything else.",
    )
    reason = models.CharField(max_length=REASON_MAX_LENGTH, help_text="Why it was classified so, in one line.")
    report_type = models.CharField(
        max_length=20, blank=True, help_text="delivery-status (a DSN), feedback-report (ARF), or empty: not a report."
    )
    status = models.CharField(
        "status code", max_length=16, blank=True, help_text="The enhanced status code (x.y.z) the DSN gave."
    )
    action = models.CharField(max_length=20, blank=True, help_text="The DSN's action: failed, delayed, delivered...")
    feedback_type = models.CharField(max_length=40, blank=True, help_text="ARF's Feedback-Type: abuse, fraud...")
    diagnostic = models.CharField(
        max_length=REPLY_MAX_LENGTH, blank=True, help_text="The remote server's reply (the DSN's Diagnostic-Code)."
    )
    remote_mta = models.CharField("remote MTA", max_length=255, blank=True)
    reporter = models.CharField(
        max_length=255, blank=True, help_text="Who reported it: the DSN's Reporting-MTA, or the feedback loop's agent."
    )
    recipient = models.CharField(max_length=ADDRESS_MAX_LENGTH, blank=True)
    original_sender = models.CharField(max_length=ADDRESS_MAX_LENGTH, blank=True)
    sender_domain = models.CharField(max_length=253, blank=True)
    original_message_id = models.CharField("original Message-ID", max_length=255, blank=True)
    queue_id = models.CharField(
        "queue ID",
        max_length=QUEUE_ID_MAX_LENGTH,
        blank=True,
        help_text="The queue ID of the message it was tied by, or the one the report named.",
    )
    trace = models.CharField(max_length=255, blank=True, help_text="The original message's X-Dockspace-Trace.")
    verp_tag = models.CharField("VERP tag", max_length=255, blank=True)
    source_ip = models.GenericIPAddressField(
        "source IP",
        null=True,
        blank=True,
        help_text="A complaint's Source-IP, as the report gave it (anyone can write one): shown, never counted.",
    )
    message = models.ForeignKey(
        MailMessage,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="feedback_events",
        help_text="The message it tells of, found in the mail traffic by queue ID, else by Message-ID; only when the "
        "recipient is one of the message's own.",
    )
    sending_ip = models.GenericIPAddressField(
        "sending IP",
        null=True,
        blank=True,
        help_text="The IP the message left from towards the recipient (its delivery attempt's out-* transport); none "
        "when it is tied to no message.",
    )
    digest = models.CharField(max_length=DIGEST_LENGTH, editable=False, help_text="sha256 of the raw message.")
    position = models.PositiveSmallIntegerField(default=0, editable=False, help_text="The recipient's place in it.")

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "bounce or complaint"
        verbose_name_plural = "bounces and complaints"
        constraints = [models.UniqueConstraint(fields=["digest", "position"], name="feedbackevent_digest_unique")]
        indexes = [
            models.Index(fields=["sending_ip", "received_at"], name="feedbackevent_sending_ip"),
            models.Index(fields=["kind", "received_at"], name="feedbackevent_kind"),
            models.Index(fields=["sender_domain", "received_at"], name="feedbackevent_sender_domain"),
            models.Index(fields=["recipient"], name="feedbackevent_recipient"),
            models.Index(fields=["received_at"], name="feedbackevent_received_at"),
        ]

    def __str__(self):
        return f"{self.kind} {self.status or self.feedback_type} {self.recipient or '-'}".replace("  ", " ")


class FeedbackWebhook(models.Model):
    """Where bounces and complaints are forwarded: an http(s) URL that gets each new event of the kinds it asks for
    as signed JSON (Standard Webhooks). The signing secret is stored encrypted (channel_secrets) and shown once."""

    # The event types sent, by FeedbackEvent kind.
    EVENT_TYPES = {
        reports.HARD: "feedback.hard_bounce",
        reports.SOFT: "feedback.soft_bounce",
        reports.COMPLAINT: "feedback.complaint",
    }

    name = models.CharField(max_length=100, unique=True)
    url = models.CharField("URL", max_length=2000, help_text="http:// or https://; it gets a POST per event.")
    is_enabled = models.BooleanField("enabled", default=True)
    sends_hard_bounces = models.BooleanField("hard bounces", default=True)
    sends_soft_bounces = models.BooleanField("soft bounces", default=False)
    sends_complaints = models.BooleanField("complaints", default=True)
    secret_encrypted = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "bounce and complaint webhook"

    def __str__(self):
        return self.name

    @classmethod
    def kind_field(cls, kind: str) -> str | None:
        """The flag that says whether a webhook wants events of `kind` (None: no webhook sends that kind)."""
        return {
            reports.HARD: "sends_hard_bounces",
            reports.SOFT: "sends_soft_bounces",
            reports.COMPLAINT: "sends_complaints",
        }.get(kind)

    def kinds(self) -> list[str]:
        return [kind for kind in self.EVENT_TYPES if getattr(self, self.kind_field(kind))]

    def set_secret(self, value: str) -> None:
        self.secret_encrypted = channel_secrets.encrypt(value)

    def secret(self) -> str:
        """The signing secret; SecretUnavailable when none is stored or it cannot be decrypted."""
        if not self.secret_encrypted:
            raise channel_secrets.SecretUnavailable("no signing secret is set")
        return channel_secrets.decrypt(self.secret_encrypted)

    def clean(self):
        errors = {}
        problem = webhook_url_problem(self.url.strip())
        if problem:
            errors["url"] = [problem]
        if self.is_enabled and not self.kinds():
            errors["sends_hard_bounces"] = ["tick at least one kind of event (hard, soft bounces, complaints)."]
        if errors:
            raise ValidationError(errors)


class FeedbackWebhookDelivery(models.Model):
    """One event to one webhook, and how sending it went: the delivery log. Claimed by a conditional UPDATE (queued ->
    sending) so exactly one process sends it; retried with the outbox's backoff (accounts.outbox_delivery)."""

    QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"
    STATUSES = [(QUEUED, "queued"), (SENDING, "sending"), (SENT, "sent"), (FAILED, "failed")]

    webhook = models.ForeignKey(
        FeedbackWebhook, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    webhook_name = models.CharField(max_length=100)
    event = models.ForeignKey(
        FeedbackEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_deliveries"
    )
    event_type = models.CharField(max_length=40, help_text="feedback.hard_bounce, feedback.soft_bounce...")
    message_id = models.CharField(
        "message ID", max_length=40, unique=True, help_text="webhook-id: the same on every retry."
    )
    payload = models.JSONField(help_text="The body sent.")
    status = models.CharField(max_length=10, choices=STATUSES, default=QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    next_attempt_at = models.DateTimeField(default=timezone.now, help_text="When it is tried (again).")
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, help_text="Why the last attempt failed.")
    answer = models.CharField(max_length=200, blank=True, help_text="What the receiver answered when it took it.")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="feedbackdelivery_due")]

    def __str__(self):
        return f"{self.event_type} -> {self.webhook_name}"
