"""The send limits as people and operators see them: today's usage of a mailbox or a domain against its tier's daily
limits (read from the policy service's counters), and the reset an operator gives to lift a block. The same rules
for the profile, the admin and `manage.py send_limits`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from accounts import authz
from accounts.audit import audit
from deliverability import policy_rules as rules
from deliverability.policy_counters import open_counters
from dockspace.validation import field_error
from mail.addresses import normalize_domain
from mail.models import Domain, Mailbox, Tier

VIEW_MAILBOX = "mail.view_mailbox"
CHANGE_MAILBOX = "mail.change_mailbox"
VIEW_DOMAIN = "mail.view_domain"
CHANGE_DOMAIN = "mail.change_domain"


@dataclass(frozen=True)
class LimitUsage:
    """One daily window: whose it is, what was sent today and the limit (None: counted, no limit)."""

    subject: str
    per_domain: bool
    used: int
    limit: int | None
    tier: str
    resets_at: dt.datetime

    @property
    def is_full(self) -> bool:
        return self.limit is not None and self.used >= self.limit

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)

    @property
    def percent(self) -> int:
        return 0 if not self.limit else min(100, round(100 * self.used / self.limit))

    def as_dict(self) -> dict:
        return {
            "subject": self.subject,
            "kind": "domain" if self.per_domain else "mailbox",
            "tier": self.tier or None,
            "sent_today": self.used,
            "limit": self.limit,
            "remaining": self.remaining,
            "is_full": self.is_full,
            "resets_at": self.resets_at.isoformat(),
        }


def _resets_at(now: dt.datetime) -> dt.datetime:
    day = now.astimezone(dt.UTC).date() + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _usage(mailbox: Mailbox | None, domain: Domain, now: dt.datetime) -> list[LimitUsage]:
    tier = domain.tier
    day = rules.day_of(now)
    windows: list[tuple[str, str, bool, int | None]] = []
    if mailbox is not None:
        address = mailbox.address.lower()
        windows.append((rules.mailbox_key(address, day), address, False, tier.daily_send_limit if tier else None))
    windows.append(
        (rules.domain_key(domain.name, day), domain.name, True, tier.daily_domain_send_limit if tier else None)
    )
    counters = open_counters()
    try:
        used = counters.get([key for key, *_ in windows])
    finally:
        counters.close()
    resets = _resets_at(now)
    return [
        LimitUsage(subject, per_domain, count, limit, tier.name if tier else "", resets)
        for (_key, subject, per_domain, limit), count in zip(windows, used, strict=True)
    ]


def _find(subject: str, field: str) -> tuple[Mailbox | None, Domain]:
    text = (subject or "").strip().lower()
    if not text:
        raise field_error(field, "give a mailbox address (bob@example.com) or a domain (example.com).")
    if any(ord(c) < 32 or ord(c) == 127 for c in text) or len(text) > 254:
        raise field_error(field, f"{subject[:80]!r} is neither a mailbox address nor a domain name.")
    if "@" in text:
        mailbox = Mailbox.objects.select_related("domain__tier").filter(address=text).first()
        if mailbox is None:
            raise field_error(field, f"{text} is not a mailbox Dockspace manages.")
        return mailbox, mailbox.domain
    try:
        name = normalize_domain(text, field)
    except Exception:
        raise field_error(field, f"{subject!r} is neither a mailbox address nor a domain name.") from None
    domain = Domain.objects.select_related("tier").filter(name=name).first()
    if domain is None:
        raise field_error(field, f"{name} is not a domain Dockspace manages.")
    return None, domain


def send_usage(*, actor: authz.Actor, subject: str, now: dt.datetime | None = None, field: str = "subject"):
    """Today's usage of a mailbox (its own window and its domain's) or of a domain. A person may read their own
    mailbox's; staff need the permission to view mailboxes (or domains, for a domain)."""
    _require(actor, VIEW_MAILBOX if "@" in (subject or "") else VIEW_DOMAIN, field, subject)
    mailbox, domain = _find(subject, field)
    return _usage(mailbox, domain, now or timezone.now())


def own_send_usage(person, now: dt.datetime | None = None) -> list[LimitUsage]:
    """The signed-in person's own mailbox's usage ([] without a mailbox)."""
    mailbox = Mailbox.objects.select_related("domain__tier").filter(person_id=person.pk).first()
    if mailbox is None:
        return []
    return _usage(mailbox, mailbox.domain, now or timezone.now())


def busiest_today(*, actor: authz.Actor, now: dt.datetime | None = None, top: int = 50) -> list[LimitUsage]:
    """Today's busiest mailboxes and domains by share of their limit (those without a limit by count), full ones
    first: what an operator looks at when someone says their mail is refused. Needs the permission to view
    mailboxes."""
    authz.require_perm(actor, VIEW_MAILBOX)
    now = now or timezone.now()
    day = rules.day_of(now)
    counters = open_counters()
    try:
        boxes = counters.scan("mbx:", f":{day}")
        domains = counters.scan("dom:", f":{day}")
    finally:
        counters.close()
    addresses = {key[4 : -len(day) - 1]: used for key, used in boxes.items()}
    names = {key[4 : -len(day) - 1]: used for key, used in domains.items()}
    tiers = dict(
        Domain.objects.filter(name__in=list(names) + [a.rpartition("@")[2] for a in addresses]).values_list(
            "name", "tier_id"
        )
    )

    by_pk = {tier.pk: tier for tier in Tier.objects.filter(pk__in=[t for t in tiers.values() if t])}
    resets = _resets_at(now)
    found = []
    for address, used in addresses.items():
        tier = by_pk.get(tiers.get(address.rpartition("@")[2]))
        found.append(
            LimitUsage(address, False, used, tier.daily_send_limit if tier else None, tier.name if tier else "", resets)
        )
    for name, used in names.items():
        tier = by_pk.get(tiers.get(name))
        found.append(
            LimitUsage(
                name, True, used, tier.daily_domain_send_limit if tier else None, tier.name if tier else "", resets
            )
        )
    found.sort(key=lambda u: (not u.is_full, -(u.used / u.limit if u.limit else 0), -u.used, u.subject))
    return found[:top]


VIEW_SENDING_IP = "deliverability.view_sendingip"


def held_backlog(*, actor: authz.Actor):
    """The mail held for warmup room, soonest release first (deliverability.held_mail). Needs the permission to view
    sending IPs."""
    from deliverability.held_mail import held_messages

    authz.require_perm(actor, VIEW_SENDING_IP)
    counters = open_counters()
    try:
        return held_messages(counters)
    finally:
        counters.close()


def send_limits_reset(
    *,
    actor: authz.Actor,
    subject: str,
    actor_label: str | None = None,
    now: dt.datetime | None = None,
    field: str = "subject",
) -> list[LimitUsage]:
    """Lift today's block of a mailbox (its own counter only) or of a domain (the domain's total): the count starts
    again from 0 until midnight UTC. Audited with what was cleared. Returns the usage before the reset."""
    _require(actor, CHANGE_MAILBOX if "@" in (subject or "") else CHANGE_DOMAIN, field, subject)
    mailbox, domain = _find(subject, field)
    now = now or timezone.now()
    before = _usage(mailbox, domain, now)
    cleared = before[0]
    day = rules.day_of(now)
    key = rules.domain_key(domain.name, day) if mailbox is None else rules.mailbox_key(cleared.subject, day)
    counters = open_counters()
    try:
        counters.reset([key])
    finally:
        counters.close()
    limit = "no limit" if cleared.limit is None else f"limit {cleared.limit}"
    audit(
        "deliverability.send_limits.reset",
        actor=authz.audit_actor(actor),
        actor_label=actor_label,
        target=mailbox or domain,
        description=f"today's send count of {cleared.subject} reset from {cleared.used} ({limit}) to 0",
    )
    return before


def _require(actor: authz.Actor, perm: str, field: str, subject: str) -> None:
    if "@" in (subject or "") and not authz.is_system(actor) and getattr(actor, "pk", None):
        # A person reads their own mailbox's usage without any permission.
        own = Mailbox.objects.filter(person_id=actor.pk).values_list("address", flat=True).first()
        if own and own == (subject or "").strip().lower() and perm == VIEW_MAILBOX:
            return
    authz.require_perm(actor, perm, field)
