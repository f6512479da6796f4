"""The alert kinds deliverability declares (DeliverabilityConfig.alert_kinds()): a DNS check of a domain failing; a
sending IP or domain listed on a blocklist. evaluate() reads the stored results only; the checks themselves run in
periodic tasks and on request (deliverability.dns_checks, deliverability.dnsbl)."""

from deliverability.models import FAILED, Dnsbl, DnsblResult, DnsCheckResult
from dockspace.alert_kinds import SUBJECT_MAX_LENGTH, AlertKind, Observation, RuleView

DNS_CHECK_FAILED = "deliverability.dns_check_failed"
DNSBL_LISTED = "deliverability.dnsbl_listed"


def dns_check_subject(result: DnsCheckResult) -> str:
    """One alert per domain and check (and DKIM selector or sending IP): "example.com DKIM mail"."""
    return f"{result.domain.name} {result.check_label}"[:SUBJECT_MAX_LENGTH]


def dns_check_observations(rule: RuleView) -> list[Observation]:
    """Firing while a domain's latest result of a check is failed; ok or warning resolves it. A check that is no
    longer run (a retired selector, an IP that stopped sending) is no longer reported, which resolves it too."""
    rows = DnsCheckResult.objects.filter(is_latest=True).select_related("domain").order_by("domain__name", "pk")
    return [Observation(dns_check_subject(result), result.level == FAILED, None, _summary(result)) for result in rows]


def _summary(result: DnsCheckResult) -> str:
    if result.level == FAILED and result.record_text:
        return f"{result.reason}. Publish: {result.record_text}"[:1000]
    return result.reason[:1000]


def dnsbl_subject(result: DnsblResult) -> str:
    """One alert per subject and list: "192.0.2.10 on Spamhaus ZEN"."""
    return f"{result.subject} on {result.dnsbl.name}"[:SUBJECT_MAX_LENGTH]


def dnsbl_observations(rule: RuleView) -> list[Observation]:
    """Firing while a subject's current standing on a standby or alert list is listed; its delisting (or the list
    being disabled) resolves it. Information lists are shown in the admin only. Errors never change the standing."""
    rows = (
        DnsblResult.objects.filter(is_latest=True, dnsbl__is_enabled=True)
        .exclude(dnsbl__action=Dnsbl.INFORMATION)
        .select_related("dnsbl")
        .order_by("subject", "dnsbl__name")
    )
    observations = []
    for row in rows:
        listed = row.status == DnsblResult.LISTED
        if listed:
            summary = f"{row.subject} is listed on {row.dnsbl.name} ({row.dnsbl.zone}): {row.code} {row.meaning}."
            if row.dnsbl.removal_url:
                summary += f" Removal: {row.dnsbl.removal_url}"
        else:
            summary = f"{row.subject} is not listed on {row.dnsbl.name}."
        observations.append(Observation(dnsbl_subject(row), listed, None, summary[:1000]))
    return observations


DELIVERABILITY_KINDS = [
    AlertKind(
        name=DNS_CHECK_FAILED,
        label="DNS check failed",
        subject_kind="domain check",
        description="A domain's latest DNS check (MX, SPF, DKIM, DMARC, PTR, DBL) failed; resolved when it passes "
        "again. The notification names the record to publish.",
        evaluate=dns_check_observations,
    ),
    AlertKind(
        name=DNSBL_LISTED,
        label="Listed on a blocklist",
        subject_kind="IP or domain on a list",
        description="A sending IP or a domain is listed on a blocklist whose action is standby or alert (a standby "
        "listing also rests the IP at once); resolved when the list no longer lists it. The notification names "
        "the code's meaning and the list's removal page.",
        for_seconds=0,
        evaluate=dnsbl_observations,
    ),
]
