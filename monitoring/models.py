"""Health probes, metrics and alerts."""

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

# --- Alerts (rules, alerts, notification channels and log): monitoring/alert_models.py -----------------------
from monitoring.alert_models import Alert, AlertEvent, AlertRule, NotificationChannel  # noqa: F401

# --- Bounces and complaints read from the feedback mailbox: monitoring/feedback_models.py ----------------------------
from monitoring.feedback_models import FeedbackEvent, FeedbackWebhook, FeedbackWebhookDelivery  # noqa: F401

# --- Mail traffic (log sources, messages, delivery attempts, SMTP rejections): monitoring/traffic_models.py ---------
from monitoring.traffic_models import DeliveryAttempt, LogSource, MailMessage, SmtpRejection  # noqa: F401

# --- mail hosts ----------------------------------------------------------------------------------
# The DMS machines Dockspace manages over SSH (monitoring.ssh). The private key is never stored here: a row
# names a file on the Dockspace machine or an environment variable that holds it.

MAILHOST_NAME_RULE = "1 to 63 lower-case letters, digits and hyphens, starting with a letter or digit"
mailhost_name_validator = RegexValidator(r"^[a-z0-9][a-z0-9-]{0,62}\Z", f"a host name here is {MAILHOST_NAME_RULE}.")


class MailHost(models.Model):
    """A DMS host reached over SSH. Its host key is pinned when it is added (after the operator trusted the
    fingerprint it offered); a host offering another key is refused and nothing runs on it."""

    name = models.CharField(
        max_length=63,
        unique=True,
        validators=[mailhost_name_validator],
        help_text=f"How Dockspace calls the host ({MAILHOST_NAME_RULE}), e.g. mx1.",
    )
    ssh_user = models.CharField("SSH user", max_length=32)
    ssh_host = models.CharField("SSH host", max_length=253, help_text="Host name or IP address.")
    ssh_port = models.PositiveIntegerField(
        "SSH port", default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    key_path = models.CharField(
        "private key file",
        max_length=500,
        blank=True,
        help_text="Absolute path of the private key on the Dockspace machine (readable by Dockspace only).",
    )
    key_env = models.CharField(
        "private key variable",
        max_length=100,
        blank=True,
        help_text="Name of the environment variable that holds the private key (or NAME_FILE, a file holding it).",
    )
    use_sudo = models.BooleanField(
        "run docker with sudo -n",
        default=False,
        help_text="Prefix docker commands with `sudo -n` (passwordless sudo for docker; never a password prompt).",
    )
    host_key_type = models.CharField(max_length=50, editable=False)
    host_key_fingerprint = models.CharField("host key fingerprint", max_length=100, editable=False)
    host_key = models.TextField("host key (public, base64)", editable=False)
    container = models.CharField(
        "DMS container", max_length=128, default="mailserver", help_text="Name of the DMS container on the host."
    )
    compose_dir = models.CharField(
        "compose directory",
        max_length=500,
        blank=True,
        help_text="Directory of the DMS compose file on the host (checked by bootstrap).",
    )
    mail_volume = models.CharField(
        max_length=500, default="/", help_text="Path on the host of the mail data volume (its disk use is watched)."
    )
    mail_hostname = models.CharField(
        "mail host name",
        max_length=253,
        blank=True,
        help_text="The name the mail ports (25, 465, 587, 993) answer to, checked against their TLS certificates; "
        "empty: the SSH host.",
    )
    notes = models.TextField(blank=True)
    is_default = models.BooleanField(default=False, editable=False)
    restart_needed = models.BooleanField(default=False, editable=False)
    restart_reason = models.CharField(max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "mail host"
        permissions = [("operate_mailhost", "Can restart, reload and bootstrap mail hosts")]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_mailhost"),
            models.CheckConstraint(
                condition=(Q(key_path="") & ~Q(key_env="")) | (~Q(key_path="") & Q(key_env="")),
                name="mailhost_one_key_source",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def ssh_target(self):
        host = f"[{self.ssh_host}]" if ":" in self.ssh_host else self.ssh_host
        return f"{self.ssh_user}@{host}:{self.ssh_port}"

    @property
    def key_source(self):
        return f"file {self.key_path}" if self.key_path else f"environment variable {self.key_env}"

    @property
    def tls_hostname(self):
        return self.mail_hostname or self.ssh_host


# --- probe history ---------------------------------------------------------------------------------------
# One row per probe of a host (every 5 minutes, and `mailhost check`): kept 7 days at full resolution, then
# as hourly rollups for 90 days (monitoring.probing).


class HostProbe(models.Model):
    HEALTHY, DEGRADED, DOWN = "healthy", "degraded", "down"
    STATUSES = [(HEALTHY, "healthy"), (DEGRADED, "degraded"), (DOWN, "down")]

    host = models.ForeignKey(MailHost, on_delete=models.CASCADE, related_name="probes")
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    reachable = models.BooleanField()
    status = models.CharField(max_length=10, choices=STATUSES)
    reasons = models.JSONField(default=list, blank=True)
    services = models.JSONField(default=dict, blank=True, help_text="{program: state} as supervisorctl reports.")
    expected_services = models.JSONField(default=list, blank=True)
    queue_count = models.PositiveIntegerField(null=True, blank=True)
    queue_deferred = models.PositiveIntegerField(null=True, blank=True)
    queue_oldest_age_seconds = models.FloatField(null=True, blank=True)
    disk_percent = models.FloatField(null=True, blank=True)
    disk_used_bytes = models.BigIntegerField(null=True, blank=True)
    disk_total_bytes = models.BigIntegerField(null=True, blank=True)
    load1 = models.FloatField(null=True, blank=True)
    load5 = models.FloatField(null=True, blank=True)
    load15 = models.FloatField(null=True, blank=True)
    memory_total_bytes = models.BigIntegerField(null=True, blank=True)
    memory_available_bytes = models.BigIntegerField(null=True, blank=True)
    cpus = models.PositiveIntegerField(null=True, blank=True)
    dms_version = models.CharField("DMS version", max_length=100, blank=True)
    certificates = models.JSONField(default=list, blank=True)
    errors = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = "host probe"
        indexes = [models.Index(fields=["host", "-started_at"], name="hostprobe_host_started")]

    def __str__(self):
        return f"{self.host} {self.started_at:%Y-%m-%d %H:%M} {self.status}"


class HostProbeHourly(models.Model):
    """The probes of one host in one hour, rolled up (upserted after each probe; kept 90 days)."""

    host = models.ForeignKey(MailHost, on_delete=models.CASCADE, related_name="hourly_probes")
    hour = models.DateTimeField()
    probes = models.PositiveIntegerField()
    down = models.PositiveIntegerField(help_text="Probes that found the host down.")
    degraded = models.PositiveIntegerField(help_text="Probes that found the host degraded.")
    queue_count_avg = models.FloatField(null=True, blank=True)
    queue_count_max = models.PositiveIntegerField(null=True, blank=True)
    queue_oldest_age_seconds_max = models.FloatField(null=True, blank=True)
    disk_percent_avg = models.FloatField(null=True, blank=True)
    disk_percent_max = models.FloatField(null=True, blank=True)
    load1_avg = models.FloatField(null=True, blank=True)
    load1_max = models.FloatField(null=True, blank=True)
    memory_available_bytes_min = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-hour"]
        verbose_name = "hourly host probe"
        constraints = [models.UniqueConstraint(fields=["host", "hour"], name="hostprobehourly_once_per_hour")]

    def __str__(self):
        return f"{self.host} {self.hour:%Y-%m-%d %H}:00"


class MailboxQuotaUsage(models.Model):
    """A mailbox's quota use as its host's Dovecot last reported it (`doveadm quota get -A`): one row per mailbox
    and host, replaced at each probe."""

    host = models.ForeignKey(MailHost, on_delete=models.CASCADE, related_name="quota_usage")
    address = models.CharField(max_length=254)
    used_bytes = models.BigIntegerField()
    limit_bytes = models.BigIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    measured_at = models.DateTimeField()

    class Meta:
        ordering = ["-used_bytes"]
        verbose_name = "mailbox quota usage"
        verbose_name_plural = "mailbox quota usage"
        constraints = [models.UniqueConstraint(fields=["host", "address"], name="quotausage_once_per_host")]

    def __str__(self):
        return self.address

    @property
    def percent(self):
        return None if not self.limit_bytes else round(100 * self.used_bytes / self.limit_bytes, 1)


# --- Health of Dockspace itself (monitoring.heartbeats, /health/ready) ------------------------------------------


class Heartbeat(models.Model):
    """When a background process was last seen alive: one row per kind of process ("worker", "beat", "watchdog"),
    written by the process itself (monitoring.heartbeats), read by /health/ready, /metrics and the pages."""

    WORKER = "worker"
    BEAT = "beat"
    WATCHDOG = "watchdog"

    name = models.CharField(max_length=50, unique=True)
    seen_at = models.DateTimeField()

    class Meta:
        verbose_name = "heartbeat"

    def __str__(self):
        return f"{self.name} seen at {self.seen_at:%Y-%m-%d %H:%M:%S}"


class TaskRun(models.Model):
    """One run of a periodic Celery task, as the worker saw it end (monitoring.task_runs, Celery's signals): what
    the scheduler page shows as last run, outcome, duration and recent failures. One INSERT per run, kept 30 days
    (the periodic task "Prune task runs"). No arguments and no traceback: the error is one line, credentials in
    URLs masked."""

    SUCCESS = "success"
    FAILURE = "failure"
    RETRY = "retry"
    EXPIRED = "expired"
    REVOKED = "revoked"
    OUTCOMES = [
        (SUCCESS, "success"),
        (FAILURE, "failure"),
        (RETRY, "retry"),
        (EXPIRED, "expired"),
        (REVOKED, "revoked"),
    ]
    FAILED = (FAILURE, RETRY, EXPIRED, REVOKED)

    task = models.CharField(max_length=200, help_text="The Celery task's name.")
    periodic_task = models.CharField(
        max_length=200, blank=True, help_text="The name of beat's schedule row that sent it (blank: not sent by beat)."
    )
    task_id = models.CharField("task ID", max_length=255, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField()
    duration_seconds = models.FloatField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=OUTCOMES)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name = "task run"
        indexes = [models.Index(fields=["task", "-finished_at"], name="monitoring_taskrun_task_idx")]

    def __str__(self):
        return f"{self.task} {self.outcome} at {self.finished_at:%Y-%m-%d %H:%M:%S}"


# --- end of Health of Dockspace itself ---------------------------------------------------------------------------
