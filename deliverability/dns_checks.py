"""The DNS checks of the managed domains (MX, SPF, DKIM per selector, DMARC, PTR per sending IP, MTA-STS, TLS-RPT,
DBL): the record checks of deliverability.records composed over one DnsRun, the outcomes stored as a check run
with one result per check, the previous latest results kept as history.

One DnsRun serves a whole run over many domains, so a name several domains share (an SPF include, the mail host's
A record, a sending IP's PTR) is asked once. DNS is asked before the database transaction that stores the results.
The MTA-STS policy file is fetched over HTTPS through dockspace.outbound_http, its host resolved through the same
DnsRun (every lookup goes through the one resolver module)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.authz import Actor, acting, is_system, require_perm
from deliverability.dns.resolver import DnsRun
from deliverability.models import DnsCheckResult, DnsCheckRun
from deliverability.records.common import FAILED, OK, WARNING, Finding, Lookup, RecordToPublish, worst_level
from deliverability.records.dbl import dbl_check
from deliverability.records.dkim import dkim_check
from deliverability.records.dmarc import dmarc_check
from deliverability.records.mta_sts import PolicyFetcher, PolicyFetchError, mta_sts_check, tls_rpt_check
from deliverability.records.mx import mx_check, mx_exchanges
from deliverability.records.ptr import ptr_check
from deliverability.records.spf_suggestion import merged_spf_lookup, spf_finding
from deliverability.records.spf_walk import spf_walk
from deliverability.sending import IpAddress, helo_name, ips_for_domain
from dockspace import outbound_http
from dockspace.validation import field_error
from mail.models import DkimKey, Domain

if TYPE_CHECKING:
    from django.http import HttpRequest

RUN_PERMISSION = "deliverability.run_dns_check"
VIEW_DOMAIN = "mail.view_domain"
HISTORY_DAYS = 90
MTA_STS_POLICY_MAX_BYTES = 64 * 1024  # a policy is a few lines; a larger answer is not one


@dataclass(frozen=True)
class CheckOutcome:
    """One check's finding; `subject` is the DKIM selector or the sending IP it is about ("" otherwise)."""

    kind: str
    finding: Finding
    subject: str = ""


def _spf(domain: str, lookup: Lookup, ips: Sequence[IpAddress]) -> Finding:
    result = spf_walk(domain, lookup)
    finding = spf_finding(result, ips)
    merged = merged_spf_lookup(domain, lookup) if not finding.is_ok else None
    if merged is not None:
        # Several SPF records: the record to publish is built from all of them (one record keeping what each
        # allowed), not from scratch.
        merged_result = spf_walk(domain, merged)
        suggestion = spf_finding(merged_result, ips).record_to_publish
        if suggestion is None and merged_result.record is not None and merged_result.level == OK:
            suggestion = RecordToPublish(domain, "TXT", merged_result.record.text)  # the merge is all it takes
        if suggestion is not None:
            finding = replace(finding, record_to_publish=suggestion)
    if not ips and finding.level == OK:
        return Finding(
            WARNING, f"{domain}: SPF is valid; set DOCKSPACE_SENDING_IPS to check it authorises the mail host"
        )
    return finding


def _dkim(domain: Domain, lookup: Lookup) -> list[CheckOutcome]:
    """Every key Dockspace holds whose record must be in DNS: the active one and those rotated out, not retired."""
    keys = list(domain.dkim_keys.filter(state__in=[DkimKey.ACTIVE, DkimKey.PUBLISHED]).order_by("selector"))
    if not keys:
        reason = f"{domain.name}: Dockspace holds no DKIM key: run `manage.py dkim generate {domain.name}`"
        return [CheckOutcome(DnsCheckResult.DKIM, Finding(WARNING, reason))]
    outcomes = []
    for key in keys:
        try:
            finding = dkim_check(
                domain.name, key.selector, lookup, algorithm=key.algorithm, public_key_b64=key.public_key_b64
            ).finding
        except ValueError as exc:
            finding = Finding(FAILED, f"{key.selector}._domainkey.{domain.name}: {exc}")
        outcomes.append(CheckOutcome(DnsCheckResult.DKIM, finding, key.selector))
    return outcomes


def _ptr(ips: Sequence[IpAddress], lookup: Lookup) -> list[CheckOutcome]:
    if not ips:
        reason = "no sending IP is configured: set DOCKSPACE_SENDING_IPS to check their reverse DNS"
        return [CheckOutcome(DnsCheckResult.PTR, Finding(WARNING, reason))]
    return [CheckOutcome(DnsCheckResult.PTR, ptr_check(ip, lookup, helo_name=helo_name(ip)), str(ip)) for ip in ips]


def mta_sts_fetcher(run: DnsRun, *, port: int = 443) -> PolicyFetcher:
    """The policy fetcher of the DNS checks: HTTPS GET (certificate checked against the mta-sts.<domain> name, no
    redirect followed, RFC 8461 3.3) of at most MTA_STS_POLICY_MAX_BYTES, the host resolved through `run`, its
    addresses refused when not public (DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS). `port`: 443 but in tests."""

    def resolve(host: str) -> list[str]:
        answers = [run.lookup(host, rdtype) for rdtype in ("A", "AAAA")]
        addresses = [address for answer in answers if answer.is_ok for address in answer.records]
        if not addresses:
            why = ", ".join(f"{answer.rdtype} {answer.error or answer.status}" for answer in answers)
            raise outbound_http.OutboundError(f"{host} has no address ({why})")
        return addresses

    def fetch(url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise PolicyFetchError("an MTA-STS policy is fetched over HTTPS only")
        if port != 443:
            url = parts._replace(netloc=f"{parts.hostname}:{port}").geturl()
        try:
            response = outbound_http.get(url, max_bytes=MTA_STS_POLICY_MAX_BYTES, resolve=resolve)
        except outbound_http.RefusedAddress as exc:
            raise PolicyFetchError(f"MTA-STS policy host {exc}") from None
        except outbound_http.OutboundError as exc:
            raise PolicyFetchError(str(exc)) from None
        if response.status != 200:
            raise PolicyFetchError(f"{outbound_http.origin(url)} answered {response.describe()}, not HTTP 200")
        try:
            return response.body.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyFetchError(f"{outbound_http.origin(url)} answered something other than UTF-8 text") from None

    return fetch


def domain_findings(domain: Domain, lookup: Lookup, *, fetch_policy: PolicyFetcher) -> list[CheckOutcome]:
    """Every check of `domain` through `lookup` (the MTA-STS policy through `fetch_policy`), in the order the admin
    and the command show them. Stores nothing."""
    name = domain.name
    ips = ips_for_domain(domain)
    mx_answer = lookup(name, "MX")
    mx_hosts = [exchange for _, exchange in mx_exchanges(mx_answer.records if mx_answer.is_ok else ())]
    return [
        CheckOutcome(DnsCheckResult.MX, mx_check(name, lookup, mail_hostname=settings.MAIL_HOSTNAME, sending_ips=ips)),
        CheckOutcome(DnsCheckResult.SPF, _spf(name, lookup, ips)),
        *_dkim(domain, lookup),
        # Aggregate reports are how an operator sees who sends as the domain before tightening p: a suggested
        # record without rua would be flagged by the next check. postmaster@ exists on every mail domain (RFC 5321).
        CheckOutcome(DnsCheckResult.DMARC, dmarc_check(name, lookup, rua=[f"postmaster@{name}"]).finding),
        *_ptr(ips, lookup),
        CheckOutcome(DnsCheckResult.MTA_STS, mta_sts_check(name, lookup, mx_hosts=mx_hosts, fetch_policy=fetch_policy)),
        CheckOutcome(DnsCheckResult.TLS_RPT, tls_rpt_check(name, lookup)),
        CheckOutcome(DnsCheckResult.DBL, dbl_check(name, lookup)),
    ]


def _label(actor: Actor, actor_label: str | None) -> str:
    if actor_label:
        return actor_label
    return str(actor) if is_system(actor) else getattr(actor, "email", "") or str(actor)


def domain_dns_check(
    domain: Domain,
    *,
    actor: Actor | None = None,
    request: HttpRequest | None = None,
    actor_label: str | None = None,
    trigger: str = DnsCheckRun.MANUAL,
    run: DnsRun | None = None,
    fetch_policy: PolicyFetcher | None = None,
) -> DnsCheckRun:
    """Check `domain`'s DNS now and store the outcome as its latest results. Needs deliverability.run_dns_check and
    mail.view_domain (the results describe the domain).
    `run`: the DnsRun to ask through (a run over many domains shares one); a new one when not given.
    `fetch_policy`: how the MTA-STS policy file is read (default: mta_sts_fetcher over `run`)."""
    who = acting(request=request, actor=actor)
    require_perm(who, RUN_PERMISSION)
    require_perm(who, VIEW_DOMAIN)
    run = run or DnsRun()
    outcomes = domain_findings(domain, run.lookup, fetch_policy=fetch_policy or mta_sts_fetcher(run))
    return _store(domain, outcomes, trigger=trigger, actor_label=_label(who, actor_label))


def dns_check_domains(
    domains: Iterable[Domain] | None = None,
    *,
    actor: Actor | None = None,
    actor_label: str | None = None,
    trigger: str = DnsCheckRun.MANUAL,
    run: DnsRun | None = None,
    fetch_policy: PolicyFetcher | None = None,
) -> list[DnsCheckRun]:
    """Check each domain (default: every active domain) through one DnsRun: each name is asked once in all."""
    who = acting(actor=actor)
    require_perm(who, RUN_PERMISSION)
    require_perm(who, VIEW_DOMAIN)
    run = run or DnsRun()
    chosen = Domain.objects.filter(is_active=True) if domains is None else domains
    return [
        domain_dns_check(
            domain, actor=who, actor_label=actor_label, trigger=trigger, run=run, fetch_policy=fetch_policy
        )
        for domain in chosen
    ]


@transaction.atomic
def _store(domain: Domain, outcomes: Sequence[CheckOutcome], *, trigger: str, actor_label: str) -> DnsCheckRun:
    # The domain's row lock orders two runs storing at once (one set of latest results per domain).
    if not Domain.objects.select_for_update().filter(pk=domain.pk).exists():
        raise field_error("domain", f"{domain.name} no longer exists.")
    now = timezone.now()
    DnsCheckResult.objects.filter(domain=domain, is_latest=True).update(is_latest=False)
    check_run = DnsCheckRun.objects.create(
        domain=domain,
        trigger=trigger,
        actor_label=actor_label[:200],
        level=worst_level([outcome.finding for outcome in outcomes]),
        checked_at=now,
    )
    DnsCheckResult.objects.bulk_create(
        [
            DnsCheckResult(
                run=check_run,
                domain=domain,
                kind=outcome.kind,
                subject=outcome.subject[:100],
                level=outcome.finding.level,
                reason=outcome.finding.reason,
                problems=[{"level": p.level, "reason": p.reason} for p in outcome.finding.problems],
                record_name=record.name if record else "",
                record_type=record.rdtype if record else "",
                record_value=record.value if record else "",
                checked_at=now,
                is_latest=True,
            )
            for outcome in outcomes
            for record in [outcome.finding.record_to_publish]
        ]
    )
    return check_run


def dns_check_prune(*, now: datetime | None = None, days: int = HISTORY_DAYS) -> int:
    """Delete check runs (and their results) older than `days`, except each domain's latest. Returns runs deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    latest_runs = DnsCheckResult.objects.filter(is_latest=True).values("run_id")
    deleted, per_model = DnsCheckRun.objects.filter(checked_at__lt=cutoff).exclude(pk__in=latest_runs).delete()
    return per_model.get(DnsCheckRun._meta.label, 0)
