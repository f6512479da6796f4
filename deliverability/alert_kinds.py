"""The alert kinds deliverability declares (DeliverabilityConfig.alert_kinds()): a DNS check of a domain failing; a
sending IP or domain listed on a blocklist; a blocklist broken (failing its test points, so its answers are ignored); a
WARMING IP pulled by its warmup gate. evaluate() reads the stored results only; the checks themselves run in periodic
tasks and on request (deliverability.dns_checks, deliverability.dnsbl, deliverability.ip_warmup)."""

from deliverability import ip_lifecycle
from deliverability.models import FAILED, Dnsbl, DnsblResult, DnsCheckResult, IpWarmup
from dockspace.alert_kinds import SUBJECT_MAX_LENGTH, AlertKind, Observation, RuleView

DNS_CHECK_FAILED = "deliverability.dns_check_failed"
DNSBL_LISTED = "deliverability.dnsbl_listed"
DNSBL_BROKEN = "deliverability.dnsbl_broken"
IP_WARMUP_STANDBY = "deliverability.ip_warmup_standby"
# A list is tested every hour: "broken" must hold through two more sweeps before anyone is paged, so one bad sweep
# (a resolver restarting, a list's server briefly out) never is.
DNSBL_BROKEN_FOR = 2 * 3600


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


# What a broken list no longer does, by its action: its answers are ignored until it passes its test points again.
IGNORED_ANSWERS = {
    Dnsbl.STANDBY: "IPs it lists are not rested and raise no alert",
    Dnsbl.ALERT: "what it lists raises no alert",
    Dnsbl.INFORMATION: "what it lists is not recorded",
}


def dnsbl_broken_observations(rule: RuleView) -> list[Observation]:
    """Firing while an enabled list is broken (it failed its test points at its last test); passing them again
    resolves it, and so does disabling the list (it is no longer reported). A list not tested yet is not firing."""
    observations = []
    for dnsbl in Dnsbl.objects.filter(is_enabled=True).order_by("name"):
        if dnsbl.is_broken:
            summary = (
                f"{dnsbl.name} ({dnsbl.zone}) is broken: {dnsbl.health_reason or 'it failed its test points'}. Its "
                f"answers are ignored: {IGNORED_ANSWERS.get(dnsbl.action, 'nothing it lists counts')}. Check the "
                "resolver Dockspace asks (DOCKSPACE_DNS_RESOLVER) and the list's access key, or disable the list."
            )
        elif dnsbl.health == Dnsbl.HEALTHY:
            summary = f"{dnsbl.name} ({dnsbl.zone}) passes its test points: its answers count again."
        else:
            summary = f"{dnsbl.name} ({dnsbl.zone}) is not tested yet."
        observations.append(Observation(dnsbl.name[:SUBJECT_MAX_LENGTH], dnsbl.is_broken, None, summary[:1000]))
    return observations


def warmup_standby_observations(rule: RuleView) -> list[Observation]:
    """Firing while an IP its warmup gate pulled is still RESTING from that standby; its release (WARMING again) or
    an operator's move resolves it, and so does removing the IP (it is no longer reported)."""
    rows = IpWarmup.objects.filter(standby_at__isnull=False).select_related("ip").order_by("ip__address")
    observations = []
    for row in rows:
        ip = row.ip
        pulled = ip.state == ip_lifecycle.RESTING and row.standby_at is not None and ip.state_since <= row.standby_at
        if pulled:
            why = next((e.get("reason", "") for e in reversed(row.history) if e.get("action") == "standby"), "")
            summary = (
                f"{ip.address} was pulled from its warmup (RESTING): {why}. It takes no new mail; it comes back "
                "through quarantine release or an operator, at step 1."
            )
        else:
            summary = f"{ip.address} is {ip.state} now, no longer in warmup standby."
        observations.append(Observation(ip.address[:SUBJECT_MAX_LENGTH], pulled, None, summary[:1000]))
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
    AlertKind(
        name=DNSBL_BROKEN,
        label="Blocklist broken",
        subject_kind="blocklist",
        description="An enabled blocklist failed its test points (an answer it must give, one it must not): its "
        "answers are ignored, so a standby list rests no IP and an alert list alerts on nothing. Resolved when it "
        "passes them again or is disabled. The notification names the list and why it failed.",
        for_seconds=DNSBL_BROKEN_FOR,
        evaluate=dnsbl_broken_observations,
    ),
    AlertKind(
        name=IP_WARMUP_STANDBY,
        label="IP warmup standby",
        subject_kind="sending IP",
        description="The daily warmup evaluation pulled a WARMING IP (RESTING) because its hard bounces or complaints "
        "reached the plan's standby rate; resolved when the IP leaves that rest. The notification names the figures.",
        for_seconds=0,
        evaluate=warmup_standby_observations,
    ),
]
