"""Deliverability's data: the IPs mail leaves from, the pools domains and tiers send through and each IP's state
history; the DNS checks of the managed domains (one run per domain and check time, one result per check kind, per
DKIM selector or sending IP, kept 90 days; each domain's latest results carry `is_latest`, so the admin, the
dashboard and the alert read them without ordering the history); the blocklists (DNSBLs) and each subject's standing on
them; the warmup plans and each WARMING IP's place in its plan."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from deliverability import ip_lifecycle, warmup
from deliverability.records.common import RecordToPublish
from mail.models import Domain

WEIGHT_MIN, WEIGHT_MAX = 1, 100


class IpPool(models.Model):
    """A set of sending IPs that the domains and tiers named here send through (a domain in at most one pool:
    deliverability.sending_ips enforces it). A domain in no pool, directly or by its tier, sends through the mail
    host's default IP."""

    name = models.CharField(max_length=63, unique=True, help_text="Lower case letters, digits and '-', e.g. bulk.")
    description = models.TextField(blank=True)
    domains = models.ManyToManyField(
        "mail.Domain",
        blank=True,
        related_name="ip_pools",
        help_text="Domains that send through this pool (a domain is in at most one pool).",
    )
    tiers = models.ManyToManyField(
        "mail.Tier",
        blank=True,
        related_name="ip_pools",
        help_text="Tiers whose domains send through this pool, unless a domain is in a pool of its own.",
    )
    rotation_enabled = models.BooleanField(
        "monthly rotation",
        default=False,
        help_text="On the 1st of each month, the longest-active IP is retired when a replacement is ready.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "IP pool"
        verbose_name_plural = "IP pools"

    def __str__(self):
        return self.name


class SendingIp(models.Model):
    ACTIVE = ip_lifecycle.ACTIVE
    RETIRING = ip_lifecycle.RETIRING
    RESTING = ip_lifecycle.RESTING
    WARMING = ip_lifecycle.WARMING

    address = models.GenericIPAddressField(
        "IP address", unique=True, help_text="IPv4 or IPv6, stored normalised (IPv6 compressed, lower case)."
    )
    helo_name = models.CharField(
        "HELO name",
        max_length=253,
        help_text="The name the IP greets with (HELO/EHLO), which its PTR record should name: e.g. out1.example.com.",
    )
    pool = models.ForeignKey(IpPool, null=True, blank=True, on_delete=models.PROTECT, related_name="ips")
    weight = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(WEIGHT_MIN), MaxValueValidator(WEIGHT_MAX)],
        help_text=f"Share of the pool's mail, {WEIGHT_MIN} to {WEIGHT_MAX}, relative to the pool's other IPs.",
    )
    state = models.CharField(max_length=10, choices=ip_lifecycle.STATE_CHOICES, default=ip_lifecycle.WARMING)
    state_since = models.DateTimeField(default=timezone.now)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["address"]
        verbose_name = "sending IP"
        verbose_name_plural = "sending IPs"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(weight__gte=WEIGHT_MIN, weight__lte=WEIGHT_MAX), name="sending_ip_weight_range"
            ),
            models.CheckConstraint(condition=models.Q(state__in=ip_lifecycle.STATES), name="sending_ip_state_valid"),
        ]

    def __str__(self):
        return self.address

    @property
    def is_in_rotation(self):
        return self.state in ip_lifecycle.IN_ROTATION


class IpStateChange(models.Model):
    """One move of a sending IP's state (its first state when it was added: from_state empty), with the reason."""

    ip = models.ForeignKey(SendingIp, on_delete=models.CASCADE, related_name="state_changes", verbose_name="IP")
    from_state = models.CharField("from", max_length=10, blank=True)
    to_state = models.CharField("to", max_length=10)
    reason = models.CharField(max_length=ip_lifecycle.REASON_MAX_LENGTH)
    actor_label = models.CharField("by", max_length=254)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = "IP state change"
        verbose_name_plural = "IP state changes"
        indexes = [models.Index(fields=["ip", "-at"])]

    def __str__(self):
        return f"{self.from_state or 'new'} -> {self.to_state}"


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
    problems = models.JSONField(
        default=list,
        blank=True,
        help_text='Every problem the check found, worst first: [{"level": ..., "reason": ...}]; the reason names '
        "the first.",
    )
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
    def problem_list(self) -> list[dict]:
        """Every problem found (level and reason), worst first; the reason alone when the check found just one."""
        if self.problems:
            return self.problems
        return [] if self.level == OK else [{"level": self.level, "reason": self.reason}]

    @property
    def more_problems(self) -> bool:
        """Whether the reason leaves problems out ("(and N more)"): the full list is then worth showing."""
        return len(self.problem_list) > 1

    @property
    def record_text(self) -> str:
        """The record to publish as one zone-file line ("" when there is none)."""
        if not self.record_name:
            return ""
        return str(RecordToPublish(self.record_name, self.record_type, self.record_value))

    @property
    def record_words(self) -> list[str]:
        """record_text cut at each space (joined with spaces they are record_text again): the admin wraps a record
        between its words only, so a name like dmarc-reports@example.com is never cut at its hyphen."""
        return self.record_text.split(" ") if self.record_text else []


class Dnsbl(models.Model):
    """A blocklist the sweep asks about every sending IP (kind ip) or every active domain (kind domain): its zone,
    the codes that are listings and what each means, and what a listing does (deliverability.dnsbl). A list whose
    test points fail (RFC 5782's, or its own `test_point` that must be listed) is broken: its answers are ignored
    until it passes again."""

    IP = "ip"
    DOMAIN = "domain"
    KINDS = [(IP, "IP addresses"), (DOMAIN, "domains")]
    STANDBY = "standby"
    ALERT = "alert"
    INFORMATION = "information"
    ACTIONS = [
        (STANDBY, "standby: the IP rests at once, and an alert"),
        (ALERT, "alert only"),
        (INFORMATION, "information only (shown, no alert)"),
    ]
    UNTESTED = "untested"
    HEALTHY = "ok"
    BROKEN = "broken"
    HEALTH = [(UNTESTED, "not tested yet"), (HEALTHY, "ok"), (BROKEN, "broken")]

    name = models.CharField(max_length=63, unique=True, help_text="What operators call it, e.g. Spamhaus ZEN.")
    zone = models.CharField(max_length=253, unique=True, help_text="The zone asked, e.g. zen.spamhaus.org.")
    kind = models.CharField(max_length=10, choices=KINDS, default=IP)
    listed_codes = models.JSONField(
        default=dict,
        help_text='The answers that are listings and what each means, e.g. {"127.0.0.2": "SBL"}; "bit:8" matches a '
        "127.0.0.x answer with that bit set. Any other answer is an error, never a listing.",
    )
    alert_only_codes = models.JSONField(
        default=list,
        blank=True,
        help_text='Codes of a standby list that only alert, e.g. ["127.0.0.10", "127.0.0.11"] (Spamhaus PBL: an '
        "rDNS policy matter, not a reputation problem).",
    )
    action = models.CharField(max_length=12, choices=ACTIONS, default=ALERT)
    key_zone = models.CharField(
        "zone with an access key",
        max_length=253,
        blank=True,
        help_text="With an access key, the zone asked under it: <query>.<key>.<this zone>, e.g. zen.dq.spamhaus.net "
        "(Spamhaus DQS).",
    )
    access_key_env = models.CharField(
        "access key from environment variable",
        max_length=100,
        blank=True,
        help_text="The name of a variable starting with DOCKSPACE_DNSBL_ that holds the key (or NAME_FILE). When set, "
        "it wins over a stored key.",
    )
    access_key_encrypted = models.TextField(blank=True, editable=False)
    removal_url = models.URLField("removal page", max_length=500, blank=True)
    is_enabled = models.BooleanField("enabled", default=True)
    test_point = models.CharField(
        "test point",
        max_length=63,
        blank=True,
        help_text="What the list must answer as listed before its answers are trusted: an IP address for an IP list, "
        "a domain name for a domain list (e.g. dbltest.com, the Spamhaus DBL's own). Empty: RFC 5782's, 127.0.0.2 "
        "or test. It must still not list 127.0.0.1 (invalid for a domain list).",
    )
    health = models.CharField(max_length=10, choices=HEALTH, default=UNTESTED)
    health_checked_at = models.DateTimeField("test points checked at", null=True, blank=True)
    health_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]
        verbose_name = "DNS blocklist"
        permissions = [
            ("run_dnsbl_check", "Can run the blocklist checks"),
            ("manage_dnsbl_key", "Can set a blocklist's access key and where it is sent"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=["ip", "domain"]), name="dnsbl_kind_valid"),
            models.CheckConstraint(
                condition=models.Q(action__in=["standby", "alert", "information"]), name="dnsbl_action_valid"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_broken(self) -> bool:
        return self.health == self.BROKEN


class DnsblResult(models.Model):
    """One period of a subject's standing on a list: a new row when the status or code changes, `checked_at` moved
    on while it stays the same. Listed and clear rows carry `is_latest` (the current standing, read without ordering
    the history); errors are history rows only and never change the standing. Kept 90 days."""

    LISTED = "listed"
    CLEAR = "clear"
    ERROR = "error"
    STATUSES = [(LISTED, "listed"), (CLEAR, "clear"), (ERROR, "error")]

    dnsbl = models.ForeignKey(Dnsbl, on_delete=models.CASCADE, related_name="results", verbose_name="list")
    subject = models.CharField(max_length=253, help_text="The IP address or domain asked about.")
    sending_ip = models.ForeignKey(
        SendingIp,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="dnsbl_results",
        verbose_name="sending IP",
    )
    status = models.CharField(max_length=10, choices=STATUSES, db_index=True)
    code = models.CharField(max_length=100, blank=True)
    meaning = models.CharField(max_length=300, blank=True)
    first_seen_at = models.DateTimeField("since", default=timezone.now)
    checked_at = models.DateTimeField("last checked", default=timezone.now, db_index=True)
    cleared_at = models.DateTimeField(null=True, blank=True, help_text="For a listing: when it was seen cleared.")
    is_latest = models.BooleanField(default=False)

    class Meta:
        ordering = ["-checked_at", "-pk"]
        verbose_name = "blocklist result"
        indexes = [models.Index(fields=["subject", "dnsbl", "-checked_at"], name="dnsbl_result_subject_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["dnsbl", "subject"], condition=models.Q(is_latest=True), name="dnsbl_result_latest_once"
            ),
        ]

    def __str__(self):
        return f"{self.subject} on {self.dnsbl.name}: {self.status}"


def default_warmup_steps():
    return list(warmup.DEFAULT_STEPS)


def _percent_field(verbose_name, default, help_text):
    return models.DecimalField(verbose_name, max_digits=6, decimal_places=3, default=default, help_text=help_text)


class WarmupPlan(models.Model):
    """How a WARMING IP's daily volume grows (deliverability.warmup): its steps, then a daily growth up to the target,
    and the gates the daily evaluation judges its hard bounces and complaints by. Rates are in % of attempts."""

    name = models.CharField(max_length=63, unique=True, help_text="What operators call it, e.g. standard.")
    steps = models.JSONField(
        "daily volumes of the steps",
        default=default_warmup_steps,
        help_text="Recipients a day at each step, rising, e.g. [200, 400, 700, 1000]; the hourly cap is a 16th of it.",
    )
    growth_percent = models.DecimalField(
        "growth after the steps (% a day)",
        max_digits=5,
        decimal_places=2,
        default=warmup.DEFAULT_GROWTH_PERCENT,
        help_text="After the last listed step, each step sends this much more, up to the target.",
    )
    target_daily = models.PositiveIntegerField(
        "target daily volume",
        default=warmup.DEFAULT_TARGET_DAILY,
        help_text="Recipients a day the IP must reach; one day clean at the target ends the warmup (the IP becomes "
        "ACTIVE).",
    )
    advance_bounce_below = _percent_field(
        "advance: hard bounces below (%)", warmup.Gates.advance_bounce_below, "Advance only under this rate."
    )
    advance_complaint_below = _percent_field(
        "advance: complaints below (%)", warmup.Gates.advance_complaint_below, "Advance only under this rate."
    )
    step_back_bounce_at = _percent_field(
        "step back: hard bounces from (%)",
        warmup.Gates.step_back_bounce_at,
        "At or over this rate the IP goes back one step; between the advance rate and this one it holds.",
    )
    step_back_complaint_at = _percent_field(
        "step back: complaints from (%)", warmup.Gates.step_back_complaint_at, "At or over this rate: one step back."
    )
    standby_bounce_at = _percent_field(
        "standby: hard bounces from (%)",
        warmup.Gates.standby_bounce_at,
        "At or over this rate the IP is pulled: RESTING, and an alert.",
    )
    standby_complaint_at = _percent_field(
        "standby: complaints from (%)",
        warmup.Gates.standby_complaint_at,
        "At or over this rate the IP is pulled: RESTING, and an alert.",
    )
    min_attempts = models.PositiveIntegerField(
        "minimum sample (attempts)",
        default=warmup.Gates.min_attempts,
        help_text="Attempts needed to judge: the last 24 h, else 72 h, else 7 days; with fewer the IP holds.",
    )
    is_default = models.BooleanField(
        "default plan", default=False, help_text="The plan a WARMING IP follows unless it is given another."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "warmup plan"
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="warmup_plan_one_default"
            ),
        ]

    def __str__(self):
        return self.name

    def gates(self) -> warmup.Gates:
        return warmup.Gates(
            advance_bounce_below=self.advance_bounce_below,
            advance_complaint_below=self.advance_complaint_below,
            step_back_bounce_at=self.step_back_bounce_at,
            step_back_complaint_at=self.step_back_complaint_at,
            standby_bounce_at=self.standby_bounce_at,
            standby_complaint_at=self.standby_complaint_at,
            min_attempts=self.min_attempts,
        )

    def as_plan(self) -> warmup.Plan:
        return warmup.Plan(
            steps=tuple(self.steps),
            growth_percent=self.growth_percent,
            target_daily=self.target_daily,
            gates=self.gates(),
        )

    def problems(self) -> dict[str, str]:
        """What is wrong with the plan, {field: message} ({} when nothing)."""
        return warmup.plan_problems(
            steps=self.steps, growth_percent=self.growth_percent, target_daily=self.target_daily, gates=self.gates()
        )

    def clean(self):
        problems = self.problems()
        if problems:
            raise ValidationError({field: [message] for field, message in problems.items()})


class IpWarmup(models.Model):
    """A sending IP's place in its warmup plan: the step, since when, what it sent in it, its last send, and every
    daily decision (newest last; the audit log keeps them all)."""

    ip = models.OneToOneField(SendingIp, on_delete=models.CASCADE, related_name="warmup", verbose_name="IP")
    plan = models.ForeignKey(WarmupPlan, on_delete=models.PROTECT, related_name="ip_warmups")
    step = models.PositiveIntegerField(default=1, help_text="1 is the plan's first step.")
    step_started_at = models.DateTimeField("step started", default=timezone.now)
    sent_in_step = models.PositiveBigIntegerField("sent in this step", default=0)
    last_sent_at = models.DateTimeField("last sent", null=True, blank=True)
    standby_at = models.DateTimeField(
        "pulled at", null=True, blank=True, editable=False, help_text="When its warmup gate last rested the IP."
    )
    history = models.JSONField(default=list, blank=True, editable=False)

    class Meta:
        ordering = ["ip__address"]
        verbose_name = "IP warmup"
        constraints = [models.CheckConstraint(condition=models.Q(step__gte=1), name="ip_warmup_step_from_1")]

    def __str__(self):
        return f"{self.ip.address} at step {self.step}"

    def clean(self):
        errors = {}
        if self.step is not None and self.step < 1:
            errors["step"] = ["the first step is 1."]
        elif self.step is not None and self.plan_id is not None and not self.plan.problems():
            last = warmup.total_steps(self.plan.as_plan())
            if self.step > last:
                errors["step"] = [f"plan {self.plan.name} has {last} steps; choose 1 to {last}."]
        if not isinstance(self.history, list):
            errors["history"] = ["the history is a list of decisions."]
        if errors:
            raise ValidationError(errors)

    def caps(self) -> tuple[int, int]:
        return warmup.caps(self.plan.as_plan(), self.step)
