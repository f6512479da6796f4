"""DMARC policy records at `_dmarc.<domain>`: the tags of RFC 7489 read with RFC 9989's rules (pct, rf and ri are
historic there, t and np new, unknown tags ignored, a record without p read as p=none when rua has an address),
the record picked among a name's TXT records, and what a domain owner should fix."""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import unquote

from deliverability.records.common import FAILED, WARNING, Finding, Lookup, RecordToPublish, one_line, outcome

POLICIES = ("none", "quarantine", "reject")
ALIGNMENTS = ("r", "s")
FAILURE_OPTIONS = ("0", "1", "d", "s")
KNOWN_TAGS = ("v", "p", "sp", "np", "adkim", "aspf", "pct", "rua", "ruf", "fo", "rf", "ri", "t", "psd")
TREE_WALK_LABELS = 8  # RFC 9989 4.10: policy discovery asks at most this many names

_VERSION_RE = re.compile(r"[vV][ \t]*=[ \t]*DMARC1[ \t]*(?:;|$)")
_TAG_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_REPORT_URI_RE = re.compile(r"(mailto:[^!]+)(?:!([0-9]+[kmgt]?))?", re.IGNORECASE)
_LOCAL_PART_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_HOST_RE = re.compile(r"(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}")
_WSP = " \t"


class DmarcError(ValueError):
    """A DMARC record that breaks a rule: `tag` names the tag (v for the record as a whole), `rule` the rule."""

    def __init__(self, tag: str, rule: str) -> None:
        self.tag = tag
        self.rule = rule
        super().__init__(f"{one_line(tag)}: {rule}")


@dataclass(frozen=True)
class ReportUri:
    """One rua/ruf destination: the URI as published, its address, the address's domain (lower case), and the
    size limit suffix ("10m"; RFC 9989 has reporters ignore it)."""

    uri: str
    address: str
    domain: str
    size_limit: str = ""


@dataclass(frozen=True)
class DmarcRecord:
    """A parsed DMARC record. Tags not published are None (or empty); defaults are in the properties."""

    text: str
    p: str | None = None
    sp: str | None = None
    np: str | None = None
    adkim: str | None = None
    aspf: str | None = None
    pct: int | None = None
    rua: tuple[ReportUri, ...] = ()
    ruf: tuple[ReportUri, ...] = ()
    fo: tuple[str, ...] = ()
    rf: tuple[str, ...] = ()
    ri: int | None = None
    t: str | None = None
    psd: str | None = None
    unknown_tags: tuple[str, ...] = ()
    tag_order: tuple[str, ...] = field(default=(), compare=False)

    @property
    def policy(self) -> str | None:
        """The policy receivers apply to the domain: p; without p (RFC 9989 4.7) none when rua has an address,
        else None (no DMARC processing)."""
        return self.p or ("none" if self.rua else None)

    @property
    def subdomain_policy(self) -> str | None:
        return self.sp or self.policy

    @property
    def dkim_alignment(self) -> str:
        return self.adkim or "r"

    @property
    def spf_alignment(self) -> str:
        return self.aspf or "r"

    @property
    def is_testing(self) -> bool:
        return self.t == "y"


def is_dmarc_record(text: str) -> bool:
    """The record starts with the tag v=DMARC1 (RFC 7489 6.6.3: other TXT records at the name are discarded)."""
    return bool(_VERSION_RE.match(text))


def find_dmarc_record(records: Sequence[str]) -> str | None:
    """The one DMARC record among `_dmarc.<domain>`'s TXT records, None without one. Raises DmarcError (tag v)
    when there are several: receivers then apply no DMARC at all."""
    found = [record for record in records if is_dmarc_record(record)]
    if len(found) > 1:
        raise DmarcError("v", f"{len(found)} TXT records start with v=DMARC1; there must be exactly one")
    return found[0] if found else None


def parse_dmarc(text: str) -> DmarcRecord:
    """Parse a DMARC record. Raises DmarcError naming the first tag that breaks a rule."""
    if not is_dmarc_record(text):
        raise DmarcError("v", "a DMARC record starts with v=DMARC1")
    values: dict[str, object] = {}
    order: list[str] = []
    unknown: list[str] = []
    for part in text.split(";")[1:]:
        if not part.strip(_WSP):
            continue  # a trailing or doubled ";"
        name, equals, raw = part.partition("=")
        name = name.strip(_WSP)
        if not equals or not _TAG_NAME_RE.fullmatch(name):
            raise DmarcError(part.strip(_WSP), "a tag is name=value, the name a letter then letters, digits or _")
        name = name.lower()
        if name in order or name in unknown:
            raise DmarcError(name, "appears more than once")
        value = raw.strip(_WSP)
        if name in KNOWN_TAGS:
            values[name] = _tag_value(name, value)
            order.append(name)
        else:
            unknown.append(name)  # RFC 9989 4.7: unknown tags are ignored
    return DmarcRecord(text=text, unknown_tags=tuple(unknown), tag_order=tuple(order), **values)  # type: ignore[arg-type]


def _tag_value(name: str, value: str) -> object:
    lowered = value.lower()
    if name == "v":
        raise DmarcError("v", "must be the first tag and appear once")
    if name in ("p", "sp", "np"):
        if lowered not in POLICIES:
            raise DmarcError(name, f"{value!r} is not none, quarantine or reject")
        return lowered
    if name in ("adkim", "aspf"):
        if lowered not in ALIGNMENTS:
            raise DmarcError(name, f"{value!r} is not r (relaxed) or s (strict)")
        return lowered
    if name == "pct":
        if not re.fullmatch(r"[0-9]{1,3}", value) or int(value) > 100:
            raise DmarcError(name, f"{value!r} is not a whole number from 0 to 100")
        return int(value)
    if name == "ri":
        if not re.fullmatch(r"[0-9]{1,10}", value) or int(value) > 2**32 - 1:
            raise DmarcError(name, f"{value!r} is not a number of seconds (0 to 4294967295)")
        return int(value)
    if name in ("t", "psd"):
        flags: tuple[str, ...] = ("y", "n") if name == "t" else ("y", "n", "u")
        if lowered not in flags:
            raise DmarcError(name, f"{value!r} is not {' or '.join(flags)}")
        return lowered
    if name in ("fo", "rf"):
        options = tuple(option.strip(_WSP).lower() for option in value.split(":"))
        allowed = FAILURE_OPTIONS if name == "fo" else ("afrf",)
        for option in options:
            if option not in allowed:
                raise DmarcError(name, f"{option!r} is not one of {', '.join(allowed)} (colon-separated)")
        return options
    return _report_uris(name, value)


def _report_uris(name: str, value: str) -> tuple[ReportUri, ...]:
    uris = []
    for item in value.split(","):
        uri = item.strip(_WSP)
        match = _REPORT_URI_RE.fullmatch(uri)
        if not match:
            raise DmarcError(
                name, f"{uri!r} is not a mailto: URI; reports go to mailto:<address>[!<size>], comma-separated"
            )
        mailto, size = match.group(1), match.group(2) or ""
        address = unquote(mailto[len("mailto:") :].split("?", 1)[0])
        local, at, domain = address.rpartition("@")
        if not at or not _LOCAL_PART_RE.fullmatch(local) or not _HOST_RE.fullmatch(domain.rstrip(".")):
            raise DmarcError(name, f"{uri!r} does not hold an email address (mailto:name@domain.example)")
        uris.append(ReportUri(uri=uri, address=address, domain=domain.rstrip(".").lower(), size_limit=size.lower()))
    return tuple(uris)


def render_dmarc_record(
    p: str = "none",
    *,
    sp: str | None = None,
    np: str | None = None,
    adkim: str | None = None,
    aspf: str | None = None,
    rua: Sequence[str] = (),
    ruf: Sequence[str] = (),
    fo: Sequence[str] = (),
    t: str | None = None,
) -> str:
    """A DMARC record text, tags in the usual order; rua/ruf are addresses (mailto: added). The result parses."""
    tags = [("p", p), ("sp", sp), ("np", np), ("adkim", adkim), ("aspf", aspf), ("t", t)]
    tags += [("rua", ",".join(map(_mailto, rua)) or None), ("ruf", ",".join(map(_mailto, ruf)) or None)]
    tags += [("fo", ":".join(fo) or None)]
    text = "; ".join(["v=DMARC1", *(f"{name}={value}" for name, value in tags if value is not None)])
    parse_dmarc(text)  # raises DmarcError naming the tag a caller got wrong
    return text


def _mailto(address: str) -> str:
    """RFC 7489 6.4: "!" (size), "," (list) and ";" (tags) inside a URI are percent-encoded."""
    for char, code in (("%", "%25"), ("!", "%21"), (",", "%2C"), (";", "%3B")):
        address = address.replace(char, code)
    return f"mailto:{address}"


def suggest_dmarc_record(domain: str, existing: DmarcRecord | None = None, rua: Sequence[str] = ()) -> RecordToPublish:
    """The DMARC record to publish at _dmarc.<domain>: the existing record's policy, alignment and report
    addresses kept (p at least none, pct/rf/ri dropped as RFC 9989 did, t=y kept), plus `rua` addresses;
    without one, p=none (RFC 9989's starting point: reports first, then quarantine and reject)."""
    domain = domain.rstrip(".").lower()
    if existing is None:
        text = render_dmarc_record("none", rua=list(dict.fromkeys(rua)))
    else:
        addresses = [uri.address for uri in existing.rua] + [address for address in rua]
        text = render_dmarc_record(
            existing.policy or "none",
            sp=existing.sp,
            np=existing.np,
            adkim=existing.adkim,
            aspf=existing.aspf,
            rua=list(dict.fromkeys(addresses)),
            ruf=[uri.address for uri in existing.ruf],
            fo=existing.fo,
            t=existing.t,
        )
    return RecordToPublish(f"_dmarc.{domain}", "TXT", text)


@dataclass(frozen=True)
class ExternalDestination:
    """A report address outside the policy domain: receivers send reports there only if `authorisation_name`
    holds a TXT record starting v=DMARC1 (RFC 7489 7.1)."""

    address: str
    domain: str
    authorisation_name: str


@dataclass(frozen=True)
class DmarcCheck:
    """What `_dmarc.<domain>` says. `record_domain` is where the record applying to the domain was found (a
    parent's under RFC 9989's tree walk when the domain has none); `policy` the one applied to the domain."""

    domain: str
    record_domain: str
    record: DmarcRecord | None
    problems: tuple[Finding, ...]
    external_destinations: tuple[ExternalDestination, ...]
    finding: Finding

    @property
    def policy(self) -> str | None:
        if self.record is None:
            return None
        return self.record.policy if self.record_domain == self.domain else self.record.subdomain_policy

    @property
    def alignment(self) -> tuple[str, str]:
        """(adkim, aspf) as applied: r (relaxed) unless published s."""
        return (self.record.dkim_alignment, self.record.spf_alignment) if self.record else ("r", "r")

    @property
    def rua_addresses(self) -> tuple[str, ...]:
        return tuple(uri.address for uri in self.record.rua) if self.record else ()

    @property
    def ruf_addresses(self) -> tuple[str, ...]:
        return tuple(uri.address for uri in self.record.ruf) if self.record else ()


def external_destinations(record_domain: str, record: DmarcRecord) -> tuple[ExternalDestination, ...]:
    """The rua/ruf addresses outside `record_domain` (and its subdomains), each with the authorisation record
    name its domain must publish: <record_domain>._report._dmarc.<destination>."""
    found = {}
    for uri in record.rua + record.ruf:
        if uri.domain == record_domain or uri.domain.endswith("." + record_domain) or uri.domain in found:
            continue
        found[uri.domain] = ExternalDestination(uri.address, uri.domain, f"{record_domain}._report._dmarc.{uri.domain}")
    return tuple(found.values())


def dmarc_check(domain: str, lookup: Lookup, *, rua: Sequence[str] = ()) -> DmarcCheck:
    """Read `_dmarc.<domain>` through `lookup` (a parent's record when the domain has none, RFC 9989 4.10) and
    report problems: failed for none, two records, a broken tag or no p; warnings for p=none (or sp=none under a
    stricter p), pct under 100, t=y, unknown tags and report destinations that must authorise the domain. The
    record to publish keeps what the existing one says and adds `rua` addresses when there is none."""
    domain = domain.rstrip(".").lower()
    name = f"_dmarc.{domain}"
    problems: list[Finding] = []
    record_domain = domain
    record: DmarcRecord | None = None
    text, failed = _dmarc_text(name, lookup, problems)
    if text is None and not failed:
        for parent in _parents(domain):
            text, failed = _dmarc_text(f"_dmarc.{parent}", lookup, problems)
            if text is not None or failed:
                record_domain = parent
                break
    where = f"_dmarc.{record_domain}"
    if text is not None:
        try:
            record = parse_dmarc(text)
        except DmarcError as exc:
            problems.append(Finding(FAILED, f"{where}: {exc}"))
    elif not failed:
        problems.append(Finding(FAILED, f"{domain}: no DMARC record at {name}"))
    destinations: tuple[ExternalDestination, ...] = ()
    if record is not None:
        destinations = external_destinations(record_domain, record)
        problems += _record_problems(domain, where, record_domain, record, destinations)
    suggestion = None
    if not failed and record_domain == domain:
        suggestion = suggest_dmarc_record(domain, record, () if record and record.rua else rua)
        if record is not None and _meaning(parse_dmarc(suggestion.value)) == _meaning(record):
            suggestion = None  # the same record, only spelled differently
    check = DmarcCheck(domain, record_domain, record, tuple(problems), destinations, Finding(FAILED, "not checked"))
    in_force = f"DMARC policy {check.policy} (alignment: {alignment_words(*check.alignment)})"
    finding = outcome(problems, f"{domain}: {in_force} from {where}", suggestion)
    if record is not None and not finding.is_ok:
        finding = replace(finding, reason=f"{finding.reason}; in force: {in_force}")
    return replace(check, finding=finding)


ALIGNMENT_WORDS = {"r": "relaxed", "s": "strict"}


def alignment_words(adkim: str, aspf: str) -> str:
    """("r", "s") -> "DKIM relaxed, SPF strict"."""
    return f"DKIM {ALIGNMENT_WORDS.get(adkim, adkim)}, SPF {ALIGNMENT_WORDS.get(aspf, aspf)}"


def _meaning(record: DmarcRecord) -> tuple[object, ...]:
    addresses = tuple(uri.address.lower() for uri in record.rua), tuple(uri.address.lower() for uri in record.ruf)
    return (replace(record, text="", rua=(), ruf=()), addresses)


def _dmarc_text(name: str, lookup: Lookup, problems: list[Finding]) -> tuple[str | None, bool]:
    """(the DMARC record at `name` or None, whether it could not be read)."""
    answer = lookup(name, "TXT")
    if answer.is_failure:
        problems.append(Finding(WARNING, f"{name}: the TXT lookup failed ({answer.status}); checked again later"))
        return None, True
    try:
        return find_dmarc_record(answer.records if answer.is_ok else ()), False
    except DmarcError as exc:
        problems.append(Finding(FAILED, f"{name}: {exc.rule}: receivers then apply no DMARC"))
        return None, True


def _parents(domain: str) -> list[str]:
    """RFC 9989 4.10's tree walk, short of the top-level domain: the parents of `domain` from the nearest."""
    labels = domain.split(".")
    if len(labels) > TREE_WALK_LABELS:
        labels = labels[-(TREE_WALK_LABELS - 1) :]
        return [".".join(labels[index:]) for index in range(len(labels) - 1)]
    return [".".join(labels[index:]) for index in range(1, len(labels) - 1)]


def _record_problems(
    domain: str, where: str, record_domain: str, record: DmarcRecord, destinations: Sequence[ExternalDestination]
) -> list[Finding]:
    problems = []
    inherited = record_domain != domain
    policy = record.subdomain_policy if inherited else record.policy
    tag = "sp" if inherited and record.sp else "p"
    if record.p is None:
        consequence = "RFC 9989 receivers read p=none" if record.rua else "receivers apply no DMARC"
        problems.append(Finding(FAILED, f"{where}: p is missing: RFC 7489 receivers ignore the record, {consequence}"))
    elif policy == "none":
        problems.append(
            Finding(
                WARNING,
                f"{where}: {tag}=none: mail failing DMARC is delivered as usual; move to quarantine, then reject, "
                "once reports show your mail aligned",
            )
        )
    if not inherited and record.sp == "none" and record.policy != "none":
        problems.append(Finding(WARNING, f"{where}: sp=none leaves subdomains unprotected under p={record.policy}"))
    if record.pct is not None and record.pct < 100 and policy != "none":
        problems.append(
            Finding(
                WARNING,
                f"{where}: pct={record.pct}: RFC 7489 receivers apply {tag}={policy} to only {record.pct}% of failing "
                "mail (RFC 9989 removed pct)",
            )
        )
    if record.is_testing and policy != "none":
        problems.append(Finding(WARNING, f"{where}: t=y: testing mode, receivers apply one step less than {policy}"))
    for unknown in record.unknown_tags:
        problems.append(Finding(WARNING, f"{where}: unknown tag {unknown} is ignored"))
    for destination in destinations:
        problems.append(
            Finding(
                WARNING,
                f"{where}: reports to {destination.address} need a TXT record v=DMARC1 at "
                f"{destination.authorisation_name} (published by {destination.domain})",
            )
        )
    return problems
