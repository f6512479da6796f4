"""Mail domains, mailboxes, aliases, groups, tiers, DKIM keys and the DMS sync state.

These rows are the only source of truth for mail: the DMS config files are derived from them.
"""

import unicodedata

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from dockspace.canonical import unicode_domain
from mail.addresses import normalize_domain
from mail.quota import format_quota


def validate_group_name(name):
    """A group name travels into the `groups` claim, CSV exports and command output as one field:
    no '|', no line break, no control character."""
    if "|" in name:
        raise ValidationError({"name": ["a group name cannot contain '|'."]})
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in name):
        raise ValidationError({"name": ["a group name cannot contain line breaks or control characters."]})


class Tier(models.Model):
    """Limits for the domains on it. An empty limit means no limit."""

    name = models.CharField(max_length=64, unique=True)
    description = models.CharField(max_length=200, blank=True)
    max_mailboxes = models.PositiveIntegerField(null=True, blank=True, help_text="Mailboxes per domain.")
    max_aliases = models.PositiveIntegerField(null=True, blank=True, help_text="Aliases per domain (catch-alls count).")
    max_quota_per_mailbox = models.PositiveBigIntegerField(null=True, blank=True, help_text="Bytes.")
    total_quota = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Bytes: the sum of the quotas of a domain's mailboxes."
    )
    default_quota = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Bytes: quota of new mailboxes when their domain sets none."
    )
    daily_send_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Recipients each mailbox may send to per day (UTC), counted by the policy service when a message "
        "is accepted.",
    )
    daily_domain_send_limit = models.PositiveIntegerField(
        "daily send limit per domain",
        null=True,
        blank=True,
        help_text="Recipients all the mailboxes of one domain may send to per day (UTC), together.",
    )
    max_recipients_per_message = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Recipients one message may have; a message with more is refused whole.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        """Limits that no mailbox could meet are refused: each message names both limits."""
        super().clean()
        per_mailbox, total, default = self.max_quota_per_mailbox, self.total_quota, self.default_quota
        errors = {}
        for field, value in (
            ("max_quota_per_mailbox", per_mailbox),
            ("total_quota", total),
            ("daily_send_limit", self.daily_send_limit),
            ("daily_domain_send_limit", self.daily_domain_send_limit),
            ("max_recipients_per_message", self.max_recipients_per_message),
        ):
            if value == 0:
                errors[field] = ["0 would allow no mail at all; leave it empty for no limit."]
        if per_mailbox and total and per_mailbox > total:
            errors.setdefault("max_quota_per_mailbox", []).append(
                f"the max quota per mailbox ({format_quota(per_mailbox)}) cannot be above the total quota "
                f"({format_quota(total)})."
            )
        if default == 0 and (per_mailbox or total):
            errors["default_quota"] = [
                "0 (no limit) is not allowed as the default on a tier that limits quotas; give a quota within them."
            ]
        elif default:
            if per_mailbox and default > per_mailbox:
                errors.setdefault("default_quota", []).append(
                    f"the default quota ({format_quota(default)}) cannot be above the max quota per mailbox "
                    f"({format_quota(per_mailbox)})."
                )
            if total and default > total:
                errors.setdefault("default_quota", []).append(
                    f"the default quota ({format_quota(default)}) cannot be above the total quota "
                    f"({format_quota(total)})."
                )
        if errors:
            raise ValidationError(errors)


class Domain(models.Model):
    """A mail domain Dockspace manages. Addresses exist only on these."""

    DKIM_RSA = "rsa"
    DKIM_ED25519 = "ed25519"
    DKIM_ALGORITHMS = [(DKIM_RSA, "RSA"), (DKIM_ED25519, "Ed25519")]

    name = models.CharField(max_length=253, unique=True, help_text="Stored in lower case; non-ASCII names as punycode.")
    is_active = models.BooleanField(default=True, help_text="Unticked: no address of this domain is written to DMS.")
    tier = models.ForeignKey(Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="domains")
    default_quota = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Bytes: quota of new mailboxes here (empty: the tier's default, else none)."
    )
    dkim_selector = models.CharField("DKIM selector", max_length=63, default="mail")
    dkim_algorithm = models.CharField("DKIM algorithm", max_length=10, choices=DKIM_ALGORITHMS, default=DKIM_RSA)
    dkim_bits = models.PositiveIntegerField(
        "DKIM key bits", default=2048, help_text="RSA key size (ignored for Ed25519)."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        super().clean()
        self.name = normalize_domain(self.name, "name")

    @property
    def unicode_name(self):
        return unicode_domain(self.name)


class MailboxQuerySet(models.QuerySet):
    def usable(self):
        """Mailboxes whose person may use them: sign in (to mail and Dockspace) and send (see Mailbox.is_usable)."""
        return self.filter(state=Mailbox.ACTIVE)


class Mailbox(models.Model):
    """The one mailbox of a person: local@domain."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    DISABLED = "disabled"
    STATES = [
        (ACTIVE, "Active"),
        (SUSPENDED, "Suspended: no sign-in to mail or Dockspace, mail still delivered"),
        (DISABLED, "Disabled: no sign-in, no delivery, stored mail kept"),
    ]

    person = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="mailbox")
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="mailboxes")
    local_part = models.CharField(max_length=64)
    address = models.CharField(max_length=254, unique=True, editable=False)
    quota = models.PositiveBigIntegerField(default=0, help_text="Bytes; 0 means no limit.")
    state = models.CharField(max_length=10, choices=STATES, default=ACTIVE, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MailboxQuerySet.as_manager()

    class Meta:
        ordering = ["address"]
        verbose_name_plural = "mailboxes"

    def __str__(self):
        return self.address

    def save(self, *args, **kwargs):
        self.address = f"{self.local_part}@{self.domain.name}"
        super().save(*args, **kwargs)

    @property
    def is_usable(self):
        """The one rule of "mailbox usable": active. A suspended or disabled mailbox refuses sign-in to mail
        and Dockspace, password resets and the mail OAuth introspection (mail is still delivered while
        suspended). MailboxQuerySet.usable() is the same rule for queries."""
        return self.state == self.ACTIVE


class Alias(models.Model):
    """An address (or '@domain' catch-all) that forwards to one or more targets.

    keep_copy: the address is also a mailbox and keeps a copy ("forward and keep a copy").
    """

    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="aliases")
    local_part = models.CharField(max_length=64, blank=True, help_text="Empty for a catch-all.")
    address = models.CharField(max_length=254, unique=True, editable=False)
    is_active = models.BooleanField(default=True)
    keep_copy = models.BooleanField(default=False, help_text="Also deliver to the mailbox at this same address.")
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["address"]
        verbose_name_plural = "aliases"

    def __str__(self):
        return self.address

    def save(self, *args, **kwargs):
        self.address = f"{self.local_part}@{self.domain.name}"
        super().save(*args, **kwargs)

    @property
    def is_catch_all(self):
        return not self.local_part

    @property
    def target_list(self):
        return [t.address for t in self.targets.all()]


class AliasTarget(models.Model):
    alias = models.ForeignKey(Alias, on_delete=models.CASCADE, related_name="targets")
    address = models.CharField(max_length=254, db_index=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["alias", "position"]
        constraints = [models.UniqueConstraint(fields=["alias", "address"], name="alias_target_once")]

    def __str__(self):
        return self.address


class Group(models.Model):
    """People who belong together. With a list address it is a distribution list; the same groups
    gate OIDC clients and appear in the `groups` claim."""

    name = models.CharField(max_length=64, unique=True)
    description = models.CharField(max_length=200, blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="member_groups")
    list_domain = models.ForeignKey(Domain, null=True, blank=True, on_delete=models.PROTECT, related_name="lists")
    list_local_part = models.CharField(max_length=64, blank=True)
    list_address = models.CharField(max_length=254, null=True, blank=True, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.list_address = f"{self.list_local_part}@{self.list_domain.name}" if self.list_domain_id else None
        super().save(*args, **kwargs)

    def clean(self):
        super().clean()
        validate_group_name(self.name)


class DkimKey(models.Model):
    """A DKIM key of a domain. One is active (signs); rotated-out keys stay published until retired."""

    ACTIVE = "active"
    PUBLISHED = "published"
    RETIRED = "retired"
    STATES = [
        (ACTIVE, "Active: signs mail"),
        (PUBLISHED, "Published: no longer signs, keep its DNS record until retired"),
        (RETIRED, "Retired: remove its DNS record"),
    ]

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="dkim_keys")
    selector = models.CharField(max_length=63)
    algorithm = models.CharField(max_length=10, choices=Domain.DKIM_ALGORITHMS)
    bits = models.PositiveIntegerField(default=0)
    private_key_pem = models.TextField(editable=False)
    public_key_b64 = models.TextField(editable=False)
    state = models.CharField(max_length=10, choices=STATES, default=ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["domain__name", "-created_at"]
        verbose_name = "DKIM key"
        constraints = [
            models.UniqueConstraint(fields=["domain", "selector"], name="dkim_selector_once_per_domain"),
            models.UniqueConstraint(
                fields=["domain"], condition=models.Q(state="active"), name="dkim_one_active_key_per_domain"
            ),
        ]

    def __str__(self):
        return f"{self.selector}._domainkey.{self.domain.name}"


class DmsSyncState(models.Model):
    """The one row recording how the DMS files stand: shown in the admin."""

    last_success_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    checksums = models.JSONField(default=dict, blank=True)
    last_changed = models.JSONField(default=list, blank=True)
    drift_found_at = models.DateTimeField(null=True, blank=True)
    drift_report = models.TextField(blank=True)
    restart_needed = models.BooleanField(default=False)
    restart_reason = models.CharField(max_length=200, blank=True)
    write_count = models.PositiveBigIntegerField(default=0)
    skipped = models.TextField(
        blank=True,
        help_text="Values the last sync could not write (reported and left out; everything else was written).",
    )

    class Meta:
        verbose_name = "DMS sync state"
        verbose_name_plural = "DMS sync state"

    def __str__(self):
        return "DMS sync state"

    @classmethod
    def load(cls):
        row, _ = cls.objects.get_or_create(pk=1)
        return row


class DmsPendingChange(models.Model):
    """A committed mail change that the DMS files may not show yet: inserted in the same transaction as the
    change, deleted only by a sync that read the database after it and wrote successfully. While any row
    exists the files are behind, whatever happened to the queued task (a killed worker loses it)."""

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "pending DMS change"

    def __str__(self):
        return f"DMS change pending since {self.created_at:%Y-%m-%d %H:%M:%S}"
