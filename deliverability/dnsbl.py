"""The blocklist sweep: every sending IP (SendingIp rows, and DOCKSPACE_SENDING_IPS) on each enabled IP list and every
active domain on each domain list, asked through one AsyncDnsRun (DOCKSPACE_DNS_CONCURRENCY questions in flight).
Each list's test points (RFC 5782's, or the list's own one that must be listed) are asked in the same run (every
enabled list's in a whole sweep, the hourly one included, even when none of its pairs is due); a list failing them is
marked broken and its answers are ignored. Errors (records.dnsbl) are stored as history and never change anything.

A listing on a standby list moves an ACTIVE or WARMING IP to RESTING at once (reason: the list and code); the alert
kind deliverability.dnsbl_listed fires from the stored standing; a delisting resolves it, and the IP comes back only
through quarantine release (its listings clear for DOCKSPACE_IP_QUARANTINE_DAYS: ip_clear_since) or an operator."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, OuterRef, QuerySet, Subquery
from django.utils import timezone

from accounts import authz
from accounts.audit import audit_event
from accounts.models import AuditEvent
from deliverability import dnsbl_keys, ip_lifecycle, sending_ips
from deliverability.dns.answer import Answer
from deliverability.dns.resolver import AsyncDnsRun, dnsbl_query_name
from deliverability.models import Dnsbl, DnsblResult, SendingIp
from deliverability.records.dnsbl import CLEAR, ERROR, LISTED, Verdict, rfc5782_problem, test_points, verdict
from dockspace.validation import field_error
from mail.models import Domain

RUN_PERMISSION = "deliverability.run_dnsbl_check"
VIEW_DOMAIN = "mail.view_domain"
FULL_INTERVAL = timedelta(hours=4)
# A pair checked a little under 4 hours ago is due at the hourly run that falls on the 4-hour mark.
DUE_SLACK = timedelta(minutes=10)
HISTORY_DAYS = 90
SWEEP_LABEL = "blocklist sweep"
# A DNS name as a list's zone or a checked domain: dot-separated labels, at most 253 characters.
NAME_RE = re.compile(r"^(?=.{3,253}\Z)([a-z0-9_]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?\Z")


@dataclass(frozen=True)
class Subject:
    name: str  # the IP address (normalised) or the domain
    kind: str  # Dnsbl.IP or Dnsbl.DOMAIN
    sending_ip: SendingIp | None = None


@dataclass(frozen=True)
class Outcome:
    dnsbl: Dnsbl
    subject: Subject
    verdict: Verdict
    changed: bool = False  # the standing moved (clear -> listed, listed -> clear, or another code)
    moved_to_resting: bool = False


@dataclass
class SweepReport:
    outcomes: list[Outcome] = field(default_factory=list)
    broken: list[Dnsbl] = field(default_factory=list)
    queries: int = 0

    @property
    def listed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.verdict.status == LISTED]

    def summary(self) -> str:
        errors = sum(o.verdict.status == ERROR for o in self.outcomes)
        text = f"checked {len(self.outcomes)} pair(s): {len(self.listed)} listed, {errors} error(s)"
        if self.broken:
            text += f"; broken lists: {', '.join(d.name for d in self.broken)}"
        return text


# --- subjects ----------------------------------------------------------------------------------------


def sweep_subjects() -> list[Subject]:
    """Every sending IP (rows, then DOCKSPACE_SENDING_IPS not among them) and every active domain."""
    rows = list(SendingIp.objects.order_by("address"))
    known = {ip.address for ip in rows}
    subjects = [Subject(ip.address, Dnsbl.IP, ip) for ip in rows]
    for ip in settings.SENDING_IPS:
        address = sending_ips.parse_address(str(ip))  # the spelling a one-off check uses (::ffff:a.b.c.d -> a.b.c.d)
        if address not in known:
            known.add(address)
            subjects.append(Subject(address, Dnsbl.IP))
    subjects += [Subject(d.name, Dnsbl.DOMAIN) for d in Domain.objects.filter(is_active=True).order_by("name")]
    return subjects


def subject_for(text: str, field: str = "subject") -> Subject:
    """The subject `text` names: an IP address (a sending IP's row when it is one; sending_ips.parse_address) or a
    domain name. Anything else (a scoped IPv6 address, a name with spaces, more than 253 characters) is refused
    naming `field`, before it reaches a DNS name."""
    text = str(text or "").strip()
    if not text:
        raise field_error(field, "give an IP address or a domain name (e.g. 192.0.2.10 or example.com).")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        name = text.lower().rstrip(".")
        if not NAME_RE.match(name):
            raise field_error(
                field,
                f"{name[:100]!r} is neither an IP address nor a domain name (dot-separated labels of letters, digits "
                "and '-', at most 253 characters, e.g. example.com).",
            ) from None
        return Subject(name, Dnsbl.DOMAIN)
    address = sending_ips.parse_address(text, field)
    return Subject(address, Dnsbl.IP, SendingIp.objects.filter(address=address).first())


def _query_name(subject_name: str, kind: str, zone: str) -> str:
    return dnsbl_query_name(subject_name, zone) if kind == Dnsbl.IP else f"{subject_name}.{zone}"


def _zone(dnsbl: Dnsbl) -> tuple[str, str]:
    """(the zone to ask under, the access key or ""): with a key, <key>.<key zone> (Spamhaus DQS)."""
    key = dnsbl_keys.access_key(dnsbl.access_key_env, dnsbl.access_key_encrypted)
    return (f"{key}.{dnsbl.key_zone}", key) if key else (dnsbl.zone, "")


def _scrub(text: str, key: str) -> str:
    return text.replace(key, "<key>") if key else text


def _due_pairs(lists: Sequence[Dnsbl], subjects: Sequence[Subject], now: datetime) -> set[tuple[int, str]]:
    """(list id, subject) pairs due now: never checked, not checked for FULL_INTERVAL, or listed."""
    last = dict(
        ((row["dnsbl_id"], row["subject"]), row["last"])
        for row in DnsblResult.objects.values("dnsbl_id", "subject").annotate(last=Max("checked_at"))
    )
    listed = set(DnsblResult.objects.filter(is_latest=True, status=LISTED).values_list("dnsbl_id", "subject"))
    cutoff = now - FULL_INTERVAL + DUE_SLACK
    return {
        (dnsbl.pk, s.name)
        for dnsbl in lists
        for s in subjects
        if s.kind == dnsbl.kind
        and ((dnsbl.pk, s.name) in listed or last.get((dnsbl.pk, s.name)) is None or last[(dnsbl.pk, s.name)] <= cutoff)
    }


# --- the sweep ---------------------------------------------------------------------------------------


def dnsbl_sweep(
    subjects: Iterable[Subject] | None = None,
    *,
    lists: Iterable[Dnsbl] | None = None,
    actor: authz.Actor | None = None,
    actor_label: str = SWEEP_LABEL,
    only_due: bool = False,
    now: datetime | None = None,
    run: AsyncDnsRun | None = None,
) -> SweepReport:
    """Check `subjects` (default: sweep_subjects()) on every enabled list of their kind (or the enabled ones among
    `lists`) now, store the standings and apply the lists' actions. `only_due`: only the pairs due (the hourly task).
    Needs deliverability.run_dnsbl_check; without `subjects`, also the permissions to view sending IPs and domains
    (the report names them all)."""
    who = authz.acting(actor=actor)
    authz.require_perm(who, RUN_PERMISSION)
    if subjects is None:
        # The report names every sending IP and active domain: only for those who may see them.
        authz.require_perm(who, sending_ips.VIEW)
        authz.require_perm(who, VIEW_DOMAIN)
    now = now or timezone.now()
    watched = sweep_subjects()
    watched_names = {s.name for s in watched}
    if subjects is None:
        # A domain deactivated or an address dropped from DOCKSPACE_SENDING_IPS since: its standings become history.
        DnsblResult.objects.filter(is_latest=True).exclude(subject__in=watched_names).update(is_latest=False)
    chosen, seen = [], set()
    for subject in watched if subjects is None else subjects:
        if subject.name not in seen:  # a subject named twice is checked once
            seen.add(subject.name)
            chosen.append(subject)
    enabled = Dnsbl.objects.filter(is_enabled=True).order_by("kind", "name")
    if lists is not None:
        enabled = enabled.filter(pk__in=[dnsbl.pk for dnsbl in lists])
    lists = list(enabled)
    due = _due_pairs(lists, chosen, now) if only_due else None
    report = SweepReport()

    zones: dict[int, tuple[str, str]] = {}
    for dnsbl in lists:
        try:
            zones[dnsbl.pk] = _zone(dnsbl)
        except dnsbl_keys.KeyUnavailable as exc:
            _set_health(dnsbl, Dnsbl.BROKEN, f"access key unavailable: {exc}", now)
            report.broken.append(dnsbl)
    lists = [dnsbl for dnsbl in lists if dnsbl.pk in zones]
    pairs = [
        (dnsbl, s)
        for dnsbl in lists
        for s in chosen
        if s.kind == dnsbl.kind and (due is None or (dnsbl.pk, s.name) in due)
    ]
    # A whole sweep (the hourly task's too) tests every enabled list, even one with nothing due: a list's health, and
    # the alert on a broken one, follow the list itself, not when its subjects are next due.
    tested = sorted(zones) if subjects is None else sorted({dnsbl.pk for dnsbl, _ in pairs})
    by_pk = {dnsbl.pk: dnsbl for dnsbl in lists}
    questions = []
    for pk in tested:
        dnsbl = by_pk[pk]
        # Asked under the list's zone like any question (with a key, under <key>.<key zone>).
        questions += [(_query_name(point, dnsbl.kind, zones[pk][0]), "A") for point in list_test_points(dnsbl)]
    questions += [(_query_name(s.name, dnsbl.kind, zones[dnsbl.pk][0]), "A") for dnsbl, s in pairs]
    run = run or AsyncDnsRun()
    answers = asyncio.run(run.lookup_many(questions)) if questions else []
    report.queries = run.queries_sent

    healthy = set()
    for index, pk in enumerate(tested):
        dnsbl = by_pk[pk]
        problem = rfc5782_problem(list_test_points(dnsbl), answers[2 * index], answers[2 * index + 1])
        _set_health(dnsbl, Dnsbl.BROKEN if problem else Dnsbl.HEALTHY, _scrub(problem, zones[pk][1]), now)
        if problem:
            report.broken.append(dnsbl)
        else:
            healthy.add(pk)
    checked = []
    for (dnsbl, subject), answer in zip(pairs, answers[2 * len(tested) :], strict=True):
        found = _verdict(dnsbl, answer, zones[dnsbl.pk][1])
        # A broken list's answers are ignored; its failed lookups are still kept as errors (history only).
        if dnsbl.pk in healthy or found.status == ERROR:
            checked.append((dnsbl, subject, found))
    report.outcomes = _store(checked, now, actor_label, watched_names)
    return report


def list_test_points(dnsbl: Dnsbl) -> tuple[str, str]:
    """What `dnsbl` must answer as listed (its own test point, else RFC 5782's) and what it must not."""
    return test_points(dnsbl.kind == Dnsbl.IP, dnsbl.test_point)


def _verdict(dnsbl: Dnsbl, answer: Answer, key: str) -> Verdict:
    found = verdict(answer, dnsbl.listed_codes)
    return Verdict(found.status, found.code, _scrub(found.meaning, key)[:300])


def _set_health(dnsbl: Dnsbl, health: str, reason: str, now: datetime) -> None:
    Dnsbl.objects.filter(pk=dnsbl.pk).update(health=health, health_reason=reason[:300], health_checked_at=now)
    dnsbl.health, dnsbl.health_reason, dnsbl.health_checked_at = health, reason[:300], now


def is_standby_listing(dnsbl: Dnsbl, found: Verdict) -> bool:
    """A listing that rests the IP: on a standby list, with a code that is not alert-only (Spamhaus PBL)."""
    if dnsbl.action != Dnsbl.STANDBY or not found.is_listed:
        return False
    return any(code not in dnsbl.alert_only_codes for code in found.code.split(", "))


# Values per `IN (...)` when the standings are read and checked again: well under SQLite's limit on parameters.
READ_CHUNK = 500

Pair = tuple[int, str]  # (list id, subject)


@transaction.atomic
def _store(
    checked: Sequence[tuple[Dnsbl, Subject, Verdict]], now: datetime, actor_label: str, watched: set[str]
) -> list[Outcome]:
    """Store a sweep's verdicts in one transaction, with a few queries whatever their number. A listed or clear
    verdict moves its pair's standing on: a new current row when the status or code changed (the previous one kept
    as history, with `cleared_at` when a listing cleared; listings and delistings are audited), else the current
    row is checked again (`checked_at`, and the meaning, which may read differently now). An error is history only:
    a new row, or the last one checked again when it is the same error. Then each standby listing rests its IP.
    A subject Dockspace does not watch (asked about once, from the admin or the command) gets history only: it has
    no standing, so no alert and no dashboard count waits for a sweep that never asks about it again."""
    latest, last_error = _locked_rows(checked)
    made: list[DnsblResult] = []  # new rows
    superseded: list[DnsblResult] = []  # rows that are the current standing no more
    checked_again: list[int] = []  # rows checked again, nothing else changed
    reworded: list[DnsblResult] = []  # current rows checked again, their meaning changed
    events: list[AuditEvent] = []
    changes: list[bool] = []
    for dnsbl, subject, found in checked:
        pair = (dnsbl.pk, subject.name)
        row = DnsblResult(
            dnsbl=dnsbl,
            subject=subject.name,
            sending_ip=subject.sending_ip,
            status=found.status,
            code=found.code[:100],
            meaning=found.meaning[:300],
            first_seen_at=now,
            checked_at=now,
        )
        if found.status != ERROR and subject.name not in watched:
            made.append(row)
            changes.append(False)
            continue
        if found.status == ERROR:
            last = last_error.get(pair)
            if last is not None and (last.code, last.meaning) == (row.code, row.meaning):
                checked_again.append(last.pk)
            else:
                made.append(row)
            changes.append(False)
            continue
        current = latest.get(pair)
        if current is not None and (current.status, current.code) == (row.status, row.code):
            if current.meaning == row.meaning:
                checked_again.append(current.pk)
            else:
                current.checked_at, current.meaning = now, row.meaning
                reworded.append(current)
            changes.append(False)
            continue
        row.is_latest = True
        made.append(row)
        changes.append(True)
        was_listed = current is not None and current.status == LISTED
        if current is not None:
            current.is_latest = False
            if was_listed and found.status == CLEAR:
                current.cleared_at = now
            superseded.append(current)
        if found.is_listed or was_listed:
            events.append(_audit_event(dnsbl, subject, found, actor_label))

    # The superseded rows first: a pair has one current row at any moment (constraint dnsbl_result_latest_once).
    DnsblResult.objects.bulk_update(superseded, ["is_latest", "cleared_at"])
    DnsblResult.objects.bulk_create(made)
    for chunk in _chunks(checked_again):
        DnsblResult.objects.filter(pk__in=chunk).update(checked_at=now)
    DnsblResult.objects.bulk_update(reworded, ["checked_at", "meaning"])
    AuditEvent.objects.bulk_create(events)
    return [
        Outcome(dnsbl, subject, found, changed, _rest_if_standby(dnsbl, subject, found, actor_label))
        for (dnsbl, subject, found), changed in zip(checked, changes, strict=True)
    ]


def _locked_rows(
    checked: Sequence[tuple[Dnsbl, Subject, Verdict]],
) -> tuple[dict[Pair, DnsblResult], dict[Pair, DnsblResult]]:
    """The current standing of each pair checked, and for each pair with an error its newest row if that is an
    error; locked, so that a sweep storing at the same time waits for this one."""
    list_ids = sorted({dnsbl.pk for dnsbl, _, _ in checked})
    # The lists' row locks order two sweeps storing at once even for a pair's first standing, which has no row of
    # its own to lock yet (the second insert would break the one-current-row rule).
    list(Dnsbl.objects.select_for_update().filter(pk__in=list_ids).order_by("pk").values_list("pk", flat=True))
    rows = DnsblResult.objects.select_for_update().filter(dnsbl_id__in=list_ids)
    latest: dict[Pair, DnsblResult] = {}
    last_error: dict[Pair, DnsblResult] = {}
    for chunk in _chunks(sorted({subject.name for _, subject, _ in checked})):
        latest.update(((row.dnsbl_id, row.subject), row) for row in rows.filter(is_latest=True, subject__in=chunk))
    same_pair = DnsblResult.objects.filter(dnsbl_id=OuterRef("dnsbl_id"), subject=OuterRef("subject"))
    newest = same_pair.order_by("-checked_at", "-pk").values("pk")[:1]
    for chunk in _chunks(sorted({subject.name for _, subject, found in checked if found.status == ERROR})):
        errors = rows.filter(status=ERROR, subject__in=chunk, pk=Subquery(newest))
        last_error.update(((row.dnsbl_id, row.subject), row) for row in errors)
    return latest, last_error


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """`items` READ_CHUNK at a time."""
    return (items[start : start + READ_CHUNK] for start in range(0, len(items), READ_CHUNK))


def _audit_event(dnsbl: Dnsbl, subject: Subject, found: Verdict, actor_label: str) -> AuditEvent:
    if found.is_listed:
        action, what = "deliverability.dnsbl.listed", f"listed on {dnsbl.name}: {found.code} {found.meaning}"
    else:
        action, what = "deliverability.dnsbl.cleared", f"delisted from {dnsbl.name}"
    return audit_event(
        action, target=subject.sending_ip or dnsbl, description=f"{subject.name} {what}"[:500], actor_label=actor_label
    )


def _rest_if_standby(dnsbl: Dnsbl, subject: Subject, found: Verdict, actor_label: str) -> bool:
    """Rest the subject's IP for a standby listing; whether it moved. Decided under the IP's row lock: one an operator
    rested or removed meanwhile is left as it is."""
    ip = subject.sending_ip
    if ip is None or not is_standby_listing(dnsbl, found):
        return False
    reason = f"listed on {dnsbl.name} ({dnsbl.zone}): {found.code} {found.meaning}"
    rested = sending_ips.ip_set_state(
        ip=ip,
        state=SendingIp.RESTING,
        reason=reason[: ip_lifecycle.REASON_MAX_LENGTH],
        only_from=(SendingIp.ACTIVE, SendingIp.WARMING),
        actor=authz.SYSTEM,
        actor_label=actor_label,
    )
    return rested is not None


# --- reads ---------------------------------------------------------------------------------------------


def current_listings(subject: str | None = None) -> QuerySet[DnsblResult]:
    """The latest standings that are listings (optionally of one subject), with their lists."""
    rows = DnsblResult.objects.filter(is_latest=True, status=LISTED).select_related("dnsbl", "sending_ip")
    return rows.filter(subject=subject) if subject else rows


def ip_clear_since(ip: SendingIp, now: datetime | None = None) -> datetime:
    """Since when `ip` has been off every standby listing (for quarantine release): now while it is listed, else
    the later of when its last such listing cleared and when it entered its current state."""
    now = now or timezone.now()
    rows = DnsblResult.objects.filter(subject=ip.address, status=LISTED, dnsbl__action=Dnsbl.STANDBY).select_related(
        "dnsbl"
    )
    since = ip.state_since
    for row in rows:
        if not is_standby_listing(row.dnsbl, Verdict(LISTED, row.code, row.meaning)):
            continue
        if row.is_latest:
            return now
        if row.cleared_at and row.cleared_at > since:
            since = row.cleared_at
    return since


def dnsbl_prune(*, now: datetime | None = None, days: int = HISTORY_DAYS) -> int:
    """Delete history rows last checked more than `days` ago (each current standing is kept)."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = DnsblResult.objects.filter(checked_at__lt=cutoff, is_latest=False).delete()
    return deleted


def release_blockers(ip: SendingIp, now: datetime | None = None) -> list[str]:
    """Why Dockspace cannot confirm that `ip` is off every standby list now (empty: it can): a list that is broken
    or untested (its answers are ignored), or one whose last clear answer about `ip` is missing or older than two
    full sweeps (only errors since). Quarantine release waits for these: a list that cannot be asked is not a
    list that says "clear"."""
    now = now or timezone.now()
    fresh_after = now - 2 * FULL_INTERVAL
    lists = Dnsbl.objects.filter(is_enabled=True, kind=Dnsbl.IP, action=Dnsbl.STANDBY).order_by("name")
    standings = {
        row.dnsbl_id: row for row in DnsblResult.objects.filter(subject=ip.address, is_latest=True, dnsbl__in=lists)
    }
    blockers = []
    for dnsbl in lists:
        standing = standings.get(dnsbl.pk)
        if dnsbl.health != Dnsbl.HEALTHY:
            blockers.append(f"{dnsbl.name} is {dnsbl.health} (its answers are ignored)")
        elif standing is None or standing.status != CLEAR or standing.checked_at < fresh_after:
            since = f"{fresh_after:%Y-%m-%d %H:%M}"
            blockers.append(f"{dnsbl.name} has not answered clear about {ip.address} since {since}")
    return blockers
