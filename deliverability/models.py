"""DNS checks of the managed domains: one run per domain and check time, one result per check kind (and per DKIM
selector or sending IP), kept 90 days. The latest results of each domain carry `is_latest`, so the admin, the
dashboard and the alert read them without ordering the history."""

from django.db import models
from django.utils import timezone

from deliverability.records.common import RecordToPublish
from mail.models import Domain

OK = "ok"
WARNING = "warning"
FAILED = "failed"
LEVELS = [(OK, "ok"), (WARNING, "warning"), (FAILED, "failed")]


class DnsCheckRun(models.Model):
    """One DNS check of one domain: who or what started it, when, and its worst level."""

    DAILY = "daily"
    MANUAL = "manual"
    DKIM_CHANGE = "dkim"
    TRIGGERS = [(DAILY, "daily check"), (MANUAL, "checked on request"), (DKIM_CHANGE, "after a DKIM change")]

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dns_check_runs")
    trigger = models.CharField(max_length=10, choices=TRIGGERS, default=MANUAL)
    actor_label = models.CharField(max_length=200, blank=True, help_text="Who asked for it (a person or a command).")
    level = models.CharField(max_length=10, choices=LEVELS, db_index=True)
    checked_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-checked_at", "-pk"]
        verbose_name = "DNS check run"
        permissions = [("run_dns_check", "Can run the DNS checks of a domain")]

    def __str__(self):
        return f"{self.domain.name} at {self.checked_at:%Y-%m-%d %H:%M}"


class DnsCheckResult(models.Model):
    """One check's outcome: its level, a one-line reason and, when something must change, the record to publish."""

    MX = "mx"
    SPF = "spf"
    DKIM = "dkim"
    DMARC = "dmarc"
    PTR = "ptr"
    MTA_STS = "mta_sts"
    TLS_RPT = "tls_rpt"
    DBL = "dbl"
    CHECKS = [
        (MX, "MX"),
        (SPF, "SPF"),
        (DKIM, "DKIM"),
        (DMARC, "DMARC"),
        (PTR, "PTR"),
        (MTA_STS, "MTA-STS"),
        (TLS_RPT, "TLS-RPT"),
        (DBL, "DBL"),
    ]

    run = models.ForeignKey(DnsCheckRun, on_delete=models.CASCADE, related_name="results")
    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dns_check_results")
    kind = models.CharField("check", max_length=10, choices=CHECKS)
    subject = models.CharField(
        max_length=100, blank=True, help_text="The DKIM selector or the sending IP the check is about; empty otherwise."
    )
    level = models.CharField(max_length=10, choices=LEVELS, db_index=True)
    reason = models.TextField()
    record_name = models.CharField(max_length=255, blank=True)
    record_type = models.CharField(max_length=10, blank=True)
    record_value = models.TextField(blank=True)
    checked_at = models.DateTimeField(default=timezone.now)
    is_latest = models.BooleanField(default=True, help_text="From the domain's latest check run.")

    class Meta:
        ordering = ["domain__name", "kind", "subject"]
        verbose_name = "DNS check result"
        indexes = [models.Index(fields=["domain", "is_latest"], name="dns_result_latest_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["domain", "kind", "subject"],
                condition=models.Q(is_latest=True),
                name="dns_result_latest_once",
            ),
        ]

    def __str__(self):
        return f"{self.domain.name} {self.check_label}: {self.level}"

    @property
    def check_label(self) -> str:
        label = dict(self.CHECKS).get(self.kind, self.kind)
        return f"{label} {self.subject}" if self.subject else label

    @property
    def record_text(self) -> str:
        """The record to publish as one zone-file line ("" when there is none)."""
        if not self.record_name:
            return ""
        return str(RecordToPublish(self.record_name, self.record_type, self.record_value))
