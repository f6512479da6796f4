"""SPF records (RFC 7208) as data: pick a name's SPF record among its TXT records and parse it into terms.

Macros (RFC 7208 section 7) are checked for syntax and kept as text: expanding them needs the connecting client.
Evaluation against DNS is in deliverability.records.spf_walk."""

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from deliverability.records.common import one_line

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
# RFC 7208 4.6.4: the terms that cost a DNS lookup, counted against the limit of 10.
DNS_TERMS = frozenset({"include", "a", "mx", "ptr", "exists", "redirect"})
QUALIFIERS = "+-~?"
QUALIFIER_RESULTS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}

_VERSION_RE = re.compile(r"v=spf1(?: |$)", re.IGNORECASE)
_MODIFIER_RE = re.compile(r"([A-Za-z][A-Za-z0-9._-]*)=(.*)", re.DOTALL)
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_MACRO_RE = re.compile(r"%(?:\{([A-Za-z])([0-9]*)(r?)([.\-+,/_=]*)\}|[%_-])", re.IGNORECASE)
_TOPLABEL_RE = re.compile(r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9]")
_CIDR4 = r"0|[1-9][0-9]?"  # RFC 7208 section 12: no leading zeros
_CIDR6 = r"0|[1-9][0-9]{0,2}"
_DUAL_CIDR_RE = re.compile(rf"(?:/({_CIDR4}))?(?://({_CIDR6}))?$")
_MACRO_LETTERS = "slodiphcrtv"
_EXP_ONLY_LETTERS = "crt"  # RFC 7208 7.2: allowed only in explanation text


class SpfPermError(ValueError):
    """The record cannot be used as published: receivers return permerror (RFC 7208 2.6.7)."""

    def __init__(self, rule: str, term: str | None = None) -> None:
        self.rule = rule
        self.term = term
        super().__init__(rule if term is None else f"term '{one_line(term)}': {rule}")


class SpfSyntaxError(SpfPermError):
    """One term of the record breaks RFC 7208's syntax; `term` is the term as published, `rule` what it breaks."""

    def __init__(self, term: str, rule: str) -> None:
        super().__init__(rule, term)


@dataclass(frozen=True)
class SpfTerm:
    """One directive or modifier of an SPF record.

    `name` is lower case: a mechanism (MECHANISMS), "redirect", "exp" or an unknown modifier's name. `qualifier`
    is "+", "-", "~" or "?" for mechanisms ("+" when none is written) and "" for modifiers. `domain_spec` is the
    target of include/a/mx/ptr/exists and the value of redirect/exp, as published (macros kept; "" for a, mx and
    ptr without one: the current domain). `value` is an unknown modifier's value. `network` is the ip4/ip6
    network (host bits cleared); `cidr4`/`cidr6` the prefix lengths written on ip4/ip6/a/mx (None: whole
    address)."""

    text: str
    name: str
    qualifier: str = ""
    domain_spec: str = ""
    value: str = ""
    network: Network | None = None
    cidr4: int | None = None
    cidr6: int | None = None

    @property
    def is_mechanism(self) -> bool:
        return self.qualifier != ""

    @property
    def is_modifier(self) -> bool:
        return self.qualifier == ""

    @property
    def queries_dns(self) -> bool:
        return self.name in DNS_TERMS

    @property
    def has_macros(self) -> bool:
        return "%" in self.domain_spec

    @property
    def result(self) -> str:
        """What a match of this mechanism gives: pass, fail, softfail or neutral."""
        return QUALIFIER_RESULTS.get(self.qualifier, "")

    def target(self, current_domain: str) -> str:
        """The name this term queries (a, mx and ptr without a domain-spec query the current domain), lower case
        without the trailing dot. Meaningless for terms with macros."""
        return (self.domain_spec or current_domain).rstrip(".").lower()


@dataclass(frozen=True)
class SpfRecord:
    text: str
    terms: tuple[SpfTerm, ...]

    @property
    def mechanisms(self) -> tuple[SpfTerm, ...]:
        return tuple(term for term in self.terms if term.is_mechanism)

    @property
    def all(self) -> SpfTerm | None:
        """The first `all` mechanism: where evaluation ends at the latest."""
        return next((term for term in self.terms if term.name == "all"), None)

    @property
    def redirect(self) -> SpfTerm | None:
        return next((term for term in self.terms if term.name == "redirect"), None)

    @property
    def exp(self) -> SpfTerm | None:
        return next((term for term in self.terms if term.name == "exp"), None)

    @property
    def is_redirect_used(self) -> bool:
        """RFC 7208 6.1: redirect is ignored when the record has an `all` mechanism anywhere."""
        return self.redirect is not None and self.all is None


def is_spf_record(text: str) -> bool:
    """RFC 7208 4.5: the record starts with exactly "v=spf1" (any case), followed by a space or its end."""
    return bool(_VERSION_RE.match(text))


def find_spf_record(records: Sequence[str]) -> str | None:
    """The one SPF record among a name's TXT records (each already joined from its strings), None if there is
    none. Raises SpfPermError when there are several: receivers then return permerror (RFC 7208 4.5)."""
    found = [record for record in records if is_spf_record(record)]
    if len(found) > 1:
        raise SpfPermError(f"{len(found)} TXT records start with v=spf1; there must be exactly one")
    return found[0] if found else None


def parse_spf(text: str) -> SpfRecord:
    """The record's terms. Raises SpfSyntaxError naming the first term that breaks RFC 7208 and the rule, and
    for a repeated redirect or exp (RFC 7208 6)."""
    if not is_spf_record(text):
        first = text.split(" ", 1)[0]
        raise SpfSyntaxError(first, "an SPF record starts with v=spf1 followed by a space or its end")
    terms = []
    seen_modifiers = set()
    for word in text.split(" ")[1:]:
        if not word:
            continue  # terms are separated by one or more spaces
        term = parse_term(word)
        if term.name in ("redirect", "exp"):
            if term.name in seen_modifiers:
                raise SpfSyntaxError(word, f"{term.name} may appear only once in a record")
            seen_modifiers.add(term.name)
        terms.append(term)
    return SpfRecord(text=text, terms=tuple(terms))


def parse_term(word: str) -> SpfTerm:
    """One term (no spaces in it). Raises SpfSyntaxError."""
    for char in word:
        if not "\x21" <= char <= "\x7e":
            raise SpfSyntaxError(word, f"character {ascii(char)} is not allowed: SPF terms are visible ASCII")
    modifier = _MODIFIER_RE.fullmatch(word)
    if modifier:
        return _parse_modifier(word, modifier.group(1).lower(), modifier.group(2))
    qualifier = "+"
    body = word
    if word[0] in QUALIFIERS:
        qualifier, body = word[0], word[1:]
        if _MODIFIER_RE.fullmatch(body):
            raise SpfSyntaxError(word, "a modifier (name=value) takes no qualifier")
    name_match = _NAME_RE.match(body)
    name = name_match.group(0).lower() if name_match else ""
    rest = body[len(name) :]
    if name not in MECHANISMS or (rest and rest[0] not in ":/"):
        raise SpfSyntaxError(word, f"unknown mechanism; SPF knows {', '.join(MECHANISMS)} and name=value modifiers")
    if name == "all":
        if rest:
            raise SpfSyntaxError(word, "all takes no domain or CIDR length")
        return SpfTerm(text=word, name=name, qualifier=qualifier)
    if name in ("ip4", "ip6"):
        return _parse_ip(word, name, qualifier, rest)
    if name in ("include", "exists"):
        if not rest.startswith(":") or len(rest) == 1:
            raise SpfSyntaxError(word, f"{name} needs a domain: {name}:<domain>")
        return SpfTerm(text=word, name=name, qualifier=qualifier, domain_spec=_domain_spec(word, rest[1:]))
    if name == "ptr":
        if rest.startswith("/"):
            raise SpfSyntaxError(word, "ptr takes no CIDR length")
        domain = _domain_spec(word, rest[1:]) if rest else ""
        return SpfTerm(text=word, name=name, qualifier=qualifier, domain_spec=domain)
    return _parse_a_mx(word, name, qualifier, rest)


def _parse_modifier(word: str, name: str, value: str) -> SpfTerm:
    if name in ("redirect", "exp"):
        if not value:
            raise SpfSyntaxError(word, f"{name} needs a domain: {name}=<domain>")
        return SpfTerm(text=word, name=name, domain_spec=_domain_spec(word, value))
    _check_macros(word, value, allow_exp_letters=True)  # RFC 7208 6: unknown modifiers are ignored, not their syntax
    return SpfTerm(text=word, name=name, value=value)


def _parse_ip(word: str, name: str, qualifier: str, rest: str) -> SpfTerm:
    family, cidr_re, top = (
        (ipaddress.IPv4Address, _CIDR4, 32) if name == "ip4" else (ipaddress.IPv6Address, _CIDR6, 128)
    )
    shape = "a dotted-quad IPv4 address" if name == "ip4" else "an IPv6 address"
    if not rest.startswith(":") or len(rest) == 1:
        raise SpfSyntaxError(word, f"{name} needs {shape}: {name}:<address>[/<length>]")
    address_text, slash, cidr_text = rest[1:].partition("/")
    try:
        if "%" in address_text:  # Python takes a zone index ("fe80::1%eth0"); SPF does not
            raise ValueError
        address = family(address_text)
    except ValueError:
        raise SpfSyntaxError(word, f"{address_text!r} is not {shape}") from None
    cidr = None
    if slash:
        if not re.fullmatch(cidr_re, cidr_text) or int(cidr_text) > top:
            raise SpfSyntaxError(word, f"the CIDR length of {name} is 0-{top} without leading zeros")
        cidr = int(cidr_text)
    network = ipaddress.ip_network(f"{address}/{top if cidr is None else cidr}", strict=False)
    return SpfTerm(
        text=word,
        name=name,
        qualifier=qualifier,
        network=network,
        cidr4=cidr if name == "ip4" else None,
        cidr6=cidr if name == "ip6" else None,
    )


def _parse_a_mx(word: str, name: str, qualifier: str, rest: str) -> SpfTerm:
    domain_part, cidr_part = "", rest
    if rest.startswith(":"):
        # The dual CIDR length ends the term: "a:example.com/24//64".
        cidr_match = _DUAL_CIDR_RE.search(rest)
        cidr_part = cidr_match.group(0) if cidr_match else ""
        domain_part = rest[1 : len(rest) - len(cidr_part)]
        if not domain_part:
            raise SpfSyntaxError(word, f"{name}: needs a domain after the colon")
    cidr_match = _DUAL_CIDR_RE.fullmatch(cidr_part)
    if cidr_match is None or "/" in domain_part:
        raise SpfSyntaxError(
            word, f"{name}: CIDR lengths are /0-32 for IPv4 then //0-128 for IPv6, without leading zeros"
        )
    cidr4, cidr6 = cidr_match.groups()
    if (cidr4 and int(cidr4) > 32) or (cidr6 and int(cidr6) > 128):
        raise SpfSyntaxError(
            word, f"{name}: CIDR lengths are /0-32 for IPv4 then //0-128 for IPv6, without leading zeros"
        )
    return SpfTerm(
        text=word,
        name=name,
        qualifier=qualifier,
        domain_spec=_domain_spec(word, domain_part) if domain_part else "",
        cidr4=int(cidr4) if cidr4 else None,
        cidr6=int(cidr6) if cidr6 else None,
    )


def _domain_spec(word: str, spec: str) -> str:
    """RFC 7208 7.1: domain-spec = macro-string domain-end; domain-end is "." toplabel ["."] or a macro."""
    if _check_macros(word, spec, allow_exp_letters=False):
        return spec  # ends with a macro: what it expands to is only known for a connecting client
    name = spec[:-1] if spec.endswith(".") else spec
    last_macro = max((macro.end() for macro in _MACRO_RE.finditer(name)), default=0)
    literal_tail = name[last_macro:]
    if "." not in literal_tail or not _TOPLABEL_RE.fullmatch(literal_tail.rsplit(".", 1)[1]):
        raise SpfSyntaxError(word, f"{spec!r} is not a domain: it must end in .<top-level label> or a macro")
    if "%" not in name:
        labels = name.split(".")
        if any(not label or len(label) > 63 for label in labels) or len(name) > 253:
            raise SpfSyntaxError(
                word, f"{spec!r} is not a domain: empty label, label over 63 or name over 253 characters"
            )
    return spec


def _check_macros(word: str, text: str, *, allow_exp_letters: bool) -> bool:
    """Raise SpfSyntaxError for a bad macro in `text` (RFC 7208 7.1); True when `text` ends with a macro."""
    position, last_macro_end = 0, -1
    while (percent := text.find("%", position)) >= 0:
        macro = _MACRO_RE.match(text, percent)
        if macro is None:
            raise SpfSyntaxError(word, "'%' starts a macro: %{<letter>...}, %%, %_ or %-")
        letter, digits = macro.group(1), macro.group(2)
        if letter is not None:
            letter = letter.lower()
            if letter not in _MACRO_LETTERS:
                raise SpfSyntaxError(word, f"%{{{letter}}} is not a macro letter (one of {_MACRO_LETTERS})")
            if letter in _EXP_ONLY_LETTERS and not allow_exp_letters:
                raise SpfSyntaxError(word, f"the macro letter {letter} is allowed only in explanation text")
            if digits and int(digits) == 0:
                raise SpfSyntaxError(word, "a macro's digit transformer must not be zero")
        position = last_macro_end = macro.end()
    return last_macro_end == len(text)
