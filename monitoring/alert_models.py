"""Alerts: the rules (one per declared alert kind), the alerts they raise (one row per rule and subject, reopened
when the condition comes back), the channels notifications go to and the log of notifications sent.
Imported by monitoring.models; the state machine is in monitoring.alert_services."""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.utils import timezone

from dockspace import outbound_http
from dockspace.alert_kinds import NAME_MAX_LENGTH as KIND_MAX_LENGTH
from dockspace.alert_kinds import SUBJECT_MAX_LENGTH, alert_kind
from monitoring import channel_secrets
from monitoring.durations import format_duration

MIN_REPEAT_SECONDS = 5 * 60
MAX_DURATION_SECONDS = 30 * 86400
TELEGRAM_TOKEN_RULE = re.compile(r"\d{3,}:[A-Za-z0-9_-]{30,}\Z")
TELEGRAM_CHAT_RULE = re.compile(r"(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})\Z")
WEBHOOK_SECRET_PREFIX = "whsec_"


def webhook_secret_problem(value: str) -> str:
    """Why `value` is not a Standard Webhooks secret ("" when it is): 'whsec_' and 24 to 64 bytes in base64."""
    import base64
    import binascii

    if not value.startswith(WEBHOOK_SECRET_PREFIX):
        return "must start with 'whsec_' (a Standard Webhooks secret: whsec_ and base64)."
    try:
        raw = base64.b64decode(value[len(WEBHOOK_SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return "after 'whsec_' must come base64."
    if not 24 <= len(raw) <= 64:
        return f"must hold 24 to 64 random bytes (this one holds {len(raw)})."
    return ""


def webhook_url_problem(url: str) -> str:
    """Why `url` cannot receive signed webhooks ("" when it can): http(s) with a host, no credentials in it, and what
    sending would refuse (the same rule as outbound_http.post's)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # http://[::1 or http://[zz]/
        parts = None
    if parts is not None and (parts.scheme not in ("http", "https") or not parts.hostname):
        return "must be an http:// or https:// URL with a host."
    if parts is not None and (parts.username or parts.password):
        return "must not hold a user name or password (the body is signed instead)."
    if outbound_http.url_problem(url):
        return f"{outbound_http.url_problem(url)}."
    return ""


class NotificationChannel(models.Model):
    """Where notifications go. A secret (webhook signing secret, Telegram bot token) comes from the environment
    variable named in secret_env, or is stored encrypted (channel_secrets); it is never shown again."""

    EMAIL, WEBHOOK, TELEGRAM = "email", "webhook", "telegram"
    KINDS = [(EMAIL, "Email"), (WEBHOOK, "Webhook (Standard Webhooks, signed JSON)"), (TELEGRAM, "Telegram")]
    SECRET_KINDS = {WEBHOOK: "signing secret", TELEGRAM: "bot token"}

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=KINDS)
    is_enabled = models.BooleanField("enabled", default=True)
    is_default = models.BooleanField(
        "default for new rules",
        default=True,
        help_text="Attached to the alert rules created from now on (a new alert kind after an upgrade).",
    )
    email_to_staff = models.BooleanField(
        "email staff",
        default=False,
        help_text="Every active staff member who may see alerts (permission 'monitoring.view_alert'; superusers "
        "have it).",
    )
    email_addresses = models.TextField(blank=True, help_text="Email: more addresses, one per line.")
    webhook_url = models.CharField("webhook URL", max_length=2000, blank=True, help_text="http:// or https://.")
    telegram_chat_id = models.CharField(
        "Telegram chat ID",
        max_length=64,
        blank=True,
        help_text="The chat's numeric id (groups are negative) or @channelname. Updated by itself when Telegram "
        "says a group became a supergroup.",
    )
    secret_env = models.CharField(
        "secret from environment variable",
        max_length=100,
        blank=True,
        help_text=f"Webhook and Telegram: the name of a variable starting with {channel_secrets.ENV_PREFIX} that holds "
        "the secret (or NAME_FILE, a file holding it) in the web and worker processes. When set, it wins over a "
        "stored secret.",
    )
    secret_encrypted = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "notification channel"

    def __str__(self):
        return self.name

    @property
    def needs_secret(self):
        return self.kind in self.SECRET_KINDS

    def set_secret(self, value: str) -> None:
        self.secret_encrypted = channel_secrets.encrypt(value) if value else ""

    def secret(self) -> str:
        """The secret to send with: the environment variable's value when one is named, else the stored one.
        SecretUnavailable when there is none."""
        if self.secret_env:
            return channel_secrets.from_environment(self.secret_env)
        if self.secret_encrypted:
            return channel_secrets.decrypt(self.secret_encrypted)
        raise channel_secrets.SecretUnavailable(f"no {self.SECRET_KINDS.get(self.kind, 'secret')} is set")

    def secret_state(self) -> str:
        """What the admin shows instead of the secret."""
        if not self.needs_secret:
            return "-"
        if self.secret_env:
            try:
                channel_secrets.from_environment(self.secret_env)
            except channel_secrets.SecretUnavailable:
                return f"not set: {self.secret_env} is not set in the web process"
            return f"set (from {self.secret_env})"
        return "set (stored encrypted)" if self.secret_encrypted else "not set"

    def addresses(self) -> list[str]:
        return [line.strip() for line in self.email_addresses.splitlines() if line.strip()]

    def clean(self):
        errors = {}
        if self.kind == self.EMAIL:
            for address in self.addresses():
                try:
                    validate_email(address)
                except ValidationError:
                    errors.setdefault("email_addresses", []).append(f"{address!r} is not an email address.")
            if not self.email_to_staff and not self.addresses() and "email_addresses" not in errors:
                errors["email_addresses"] = ["give at least one address, or tick 'email staff'."]
        elif self.kind == self.WEBHOOK:
            problem = webhook_url_problem(self.webhook_url.strip())
            if problem:
                errors["webhook_url"] = [problem]
        elif self.kind == self.TELEGRAM and not TELEGRAM_CHAT_RULE.match(self.telegram_chat_id.strip()):
            errors["telegram_chat_id"] = ["must be a numeric chat id (e.g. -1001234567890) or @channelname."]
        if self.secret_env and not channel_secrets.ENV_NAME_RULE.match(self.secret_env):
            errors["secret_env"] = [
                f"must be a variable name starting with {channel_secrets.ENV_PREFIX} (upper-case letters, digits, _)."
            ]
        if self.needs_secret and not self.secret_env and not self.secret_encrypted:
            errors.setdefault("secret_env", []).append(
                f"a {self.kind} channel needs its {self.SECRET_KINDS[self.kind]}: name an environment variable or "
                "enter it below."
            )
        if errors:
            raise ValidationError(errors)


class AlertRule(models.Model):
    """The operator's settings for one declared alert kind (created with the kind's defaults, never overwritten)."""

    kind = models.CharField(max_length=KIND_MAX_LENGTH, unique=True)
    is_enabled = models.BooleanField("enabled", default=True)
    thresholds = models.JSONField(default=dict, blank=True)
    for_seconds = models.PositiveIntegerField(
        "for", help_text="The condition must hold this long before the alert fires (damps flapping)."
    )
    repeat_seconds = models.PositiveIntegerField(
        "repeat every", help_text="While it keeps firing and nobody acknowledged it, notify again this often."
    )
    notify_resolved = models.BooleanField(default=True, help_text="Notify when the condition clears by itself.")
    channels = models.ManyToManyField(NotificationChannel, blank=True, related_name="rules")
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["kind"]
        verbose_name = "alert rule"

    def __str__(self):
        declared = self.declared
        return declared.label if declared else f"{self.kind} (not declared by any app)"

    @property
    def declared(self):
        return alert_kind(self.kind)

    def clean(self):
        errors = {}
        if self.for_seconds is not None and self.for_seconds > MAX_DURATION_SECONDS:
            errors["for_seconds"] = [f"must be at most {format_duration(MAX_DURATION_SECONDS)}."]
        if self.repeat_seconds is not None and not MIN_REPEAT_SECONDS <= self.repeat_seconds <= MAX_DURATION_SECONDS:
            errors["repeat_seconds"] = [
                f"must be between {format_duration(MIN_REPEAT_SECONDS)} and {format_duration(MAX_DURATION_SECONDS)}."
            ]
        declared = self.declared
        if declared is not None:
            for threshold in declared.thresholds:
                if threshold.name in (self.thresholds or {}):
                    problem = threshold.problem(self.thresholds[threshold.name])
                    if problem:
                        errors[f"threshold_{threshold.name}"] = [problem]
        if errors:
            raise ValidationError(errors)


class Alert(models.Model):
    """One rule's condition for one subject. pending (holding, not yet for the rule's "for") -> firing
    (notified) -> resolved (cleared); when it comes back the same row goes pending again, and firing again
    counts a reopening."""

    PENDING, FIRING, RESOLVED = "pending", "firing", "resolved"
    STATES = [(PENDING, "pending"), (FIRING, "firing"), (RESOLVED, "resolved")]

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    subject = models.CharField(max_length=SUBJECT_MAX_LENGTH)
    state = models.CharField(max_length=10, choices=STATES, db_index=True)
    value = models.FloatField(null=True, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    first_seen_at = models.DateTimeField(help_text="When the condition was first seen for this subject, ever.")
    pending_since = models.DateTimeField(help_text="When the current episode began (the 'for' counts from here).")
    last_seen_at = models.DateTimeField(help_text="The last evaluation that reported this subject.")
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_notified_at = models.DateTimeField(
        null=True, blank=True, help_text="The last fired or repeat notification of this episode."
    )
    reopen_count = models.PositiveIntegerField(default=0, help_text="How often it fired again after resolving.")
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    silenced_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "subject"], name="alert_one_per_rule_subject")]
        verbose_name = "alert"

    def __str__(self):
        return f"{self.rule}: {self.subject}"

    @property
    def is_open(self):
        return self.state != self.RESOLVED

    def is_silenced(self, now=None):
        return self.silenced_until is not None and self.silenced_until > (now or timezone.now())


class AlertEvent(models.Model):
    """One notification to one channel (fired, repeat, resolved, or a channel test), with its outcome. Claimed by
    a conditional UPDATE (queued -> sending) so exactly one process sends it. Kept 93 days."""

    FIRED, REPEAT, RESOLVED, TEST = "fired", "repeat", "resolved", "test"
    KINDS = [(FIRED, "fired"), (REPEAT, "repeat"), (RESOLVED, "resolved"), (TEST, "test")]
    QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"
    STATUSES = [(QUEUED, "queued"), (SENDING, "sending"), (SENT, "sent"), (FAILED, "failed")]
    RETENTION_DAYS = 93

    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    channel = models.ForeignKey(
        NotificationChannel, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    channel_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=KINDS)
    title = models.CharField(max_length=300, help_text="The rule and subject, as notified.")
    message_id = models.CharField(
        "message ID", max_length=40, unique=True, help_text="webhook-id: the same on every retry."
    )
    payload = models.JSONField(help_text="What is sent (the webhook body; email and Telegram text are made from it).")
    status = models.CharField(max_length=10, choices=STATUSES, default=QUEUED, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "alert notification"

    def __str__(self):
        return f"{self.get_kind_display()} {self.title} -> {self.channel_name}"
