"""Outbound sending: the IPs mail leaves from, the pools domains and tiers send through, and each IP's state
history. (DNSBL and DNS check results come later.)"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from deliverability import ip_lifecycle

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
