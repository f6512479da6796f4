"""DKIM key records (RFC 6376 3.6.1, RFC 8463 for Ed25519) at `<selector>._domainkey.<domain>`: the tags parsed,
the published key compared with the one Dockspace signs with, and what receivers will make of it. The record to
publish is mail.dkim's rendering, the one the admin and `manage.py dkim show` print."""

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from deliverability.records.common import FAILED, WARNING, Finding, Lookup, RecordToPublish, one_line, outcome
from mail.dkim import dns_record_value

KEY_TYPES = ("rsa", "ed25519")
RSA_MIN_BITS = 1024  # RFC 8301: receivers ignore signatures by smaller keys
RSA_RECOMMENDED_BITS = 2048

_TAG_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_FWS_RE = re.compile(r"[ \t\r\n]+")

PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class DkimError(ValueError):
    """A DKIM key record that breaks a rule: `tag` names the tag, `rule` the rule."""

    def __init__(self, tag: str, rule: str) -> None:
        self.tag = tag
        self.rule = rule
        super().__init__(f"{one_line(tag)}: {rule}")


@dataclass(frozen=True)
class DkimKeyRecord:
    """A parsed key record. `public_key_b64` is p= without the whitespace RFC 6376 allows in it ("" = revoked);
    `hash_algorithms` is h= (() = any), `service_types` s=, `flags` t= (y testing, s strict)."""

    text: str
    key_type: str = "rsa"
    public_key_b64: str = ""
    hash_algorithms: tuple[str, ...] = ()
    service_types: tuple[str, ...] = ("*",)
    flags: tuple[str, ...] = ()

    @property
    def is_revoked(self) -> bool:
        return self.public_key_b64 == ""

    @property
    def is_testing(self) -> bool:
        return "y" in self.flags

    @property
    def is_for_email(self) -> bool:
        return "*" in self.service_types or "email" in self.service_types


def parse_dkim_key_record(text: str) -> DkimKeyRecord:
    """Parse a key record's tags (RFC 6376 3.2 tag-list). Raises DkimError naming the first tag that breaks a
    rule: v= other than DKIM1 or not first, a repeated tag, k= neither rsa nor ed25519, p= missing or not base64."""
    tags: dict[str, str] = {}
    for index, part in enumerate(text.split(";")):
        if not part.strip(" \t\r\n"):
            continue
        name, equals, value = part.partition("=")
        name = name.strip(" \t\r\n")
        if not equals or not _TAG_NAME_RE.fullmatch(name):
            raise DkimError(part.strip(), "a tag is name=value, the name a letter then letters, digits or _")
        if name in tags:
            raise DkimError(name, "appears more than once (RFC 6376 3.2: the record is then invalid)")
        if name == "v" and (index != 0 or value.strip(" \t\r\n") != "DKIM1"):
            raise DkimError("v", "when present, v=DKIM1 is the first tag")
        tags[name] = value.strip(" \t\r\n")
    key_type = tags.get("k", "rsa").lower()
    if key_type not in KEY_TYPES:
        raise DkimError("k", f"{tags['k']!r} is not rsa or ed25519")
    if "p" not in tags:
        raise DkimError("p", "the public key tag is required (empty when the key is revoked)")
    public = _FWS_RE.sub("", tags["p"])
    if not _BASE64_RE.fullmatch(public) or len(public) % 4:
        raise DkimError("p", "is not base64")
    return DkimKeyRecord(
        text=text,
        key_type=key_type,
        public_key_b64=public,
        hash_algorithms=_colon_list(tags.get("h")),
        service_types=_colon_list(tags.get("s")) or ("*",),
        flags=_colon_list(tags.get("t")),
    )


def _colon_list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(item for item in (_FWS_RE.sub("", part).lower() for part in value.split(":")) if item)


def load_public_key(key_type: str, public_key_b64: str) -> PublicKey:
    """The key p= stands for: RSA as DER SubjectPublicKeyInfo (what everyone publishes) or PKCS#1 RSAPublicKey
    (what RFC 6376 literally says), Ed25519 as the raw 32 bytes (RFC 8463). Raises DkimError naming 'p'."""
    try:
        raw = base64.b64decode(_FWS_RE.sub("", public_key_b64), validate=True)
    except (binascii.Error, ValueError):
        raise DkimError("p", "is not base64") from None
    if key_type == "ed25519":
        if len(raw) != 32:
            raise DkimError("p", f"an Ed25519 key is 32 bytes, this one is {len(raw)}")
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    try:
        key = serialization.load_der_public_key(raw)
    except (ValueError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, rsa.RSAPublicKey):
        raise DkimError("p", "k=rsa but p is not an RSA public key")
    return key


def same_public_key(left: PublicKey, right: PublicKey) -> bool:
    """Same key whatever encoding it was published in: RSA by modulus and exponent, Ed25519 by its bytes."""
    if isinstance(left, rsa.RSAPublicKey) and isinstance(right, rsa.RSAPublicKey):
        return left.public_numbers() == right.public_numbers()
    if isinstance(left, ed25519.Ed25519PublicKey) and isinstance(right, ed25519.Ed25519PublicKey):
        raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
        return left.public_bytes(*raw) == right.public_bytes(*raw)
    return False


@dataclass(frozen=True)
class DkimCheck:
    """What `<selector>._domainkey.<domain>` publishes, against the key Dockspace holds. `bits` is the published
    RSA key's size (0 for Ed25519, None when unreadable); `matches` whether it is Dockspace's key."""

    domain: str
    selector: str
    record: DkimKeyRecord | None
    matches: bool
    bits: int | None
    problems: tuple[Finding, ...]
    finding: Finding

    @property
    def name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


def dkim_record_to_publish(domain: str, selector: str, algorithm: str, public_key_b64: str) -> RecordToPublish:
    """The key record Dockspace's key needs, rendered by mail.dkim as everywhere else."""
    name = f"{selector}._domainkey.{domain.rstrip('.').lower()}"
    return RecordToPublish(name, "TXT", dns_record_value(algorithm, public_key_b64))


def dkim_check(domain: str, selector: str, lookup: Lookup, *, algorithm: str, public_key_b64: str) -> DkimCheck:
    """Read the key record through `lookup` and compare it with Dockspace's key (`algorithm` and
    `public_key_b64` as mail's DkimKey holds them). Failed: no record, several, a broken tag, revoked, not the
    same key, not for email, sha256 excluded by h=, RSA under 1024 bits; warning: under 2048 bits, t=y.
    Raises ValueError naming 'algorithm' or 'public_key_b64' when Dockspace's own key cannot be read."""
    domain = domain.rstrip(".").lower()
    publish: RecordToPublish | None = dkim_record_to_publish(domain, selector, algorithm, public_key_b64)
    try:
        held = load_public_key(algorithm, public_key_b64)
    except DkimError as exc:
        raise ValueError(f"public_key_b64: Dockspace's key cannot be read: {exc.rule}.") from None
    name = f"{selector}._domainkey.{domain}"
    problems: list[Finding] = []
    record: DkimKeyRecord | None = None
    matches, bits = False, None
    answer = lookup(name, "TXT")
    if answer.is_failure:
        problems.append(Finding(WARNING, f"{name}: the TXT lookup failed ({answer.status}); checked again later"))
        publish = None
    elif answer.is_void or not answer.records:
        problems.append(Finding(FAILED, f"{name}: no DKIM key record: receivers cannot verify Dockspace's signatures"))
    else:
        record = _select(name, answer.records, problems)
    if record is not None:
        matches, bits = _compare(name, record, algorithm, held, problems)
    if matches and not _is_fixed_by_publishing(record):
        publish = None  # the record is right; a short key is fixed by rotating it (manage.py dkim rotate)
    size = f", {bits} bits" if bits else ""
    ok = f"{name}: publishes Dockspace's {algorithm} key{size}"
    finding = outcome(problems, ok, publish)
    return DkimCheck(domain, selector, record, matches, bits, tuple(problems), finding)


def _is_fixed_by_publishing(record: DkimKeyRecord | None) -> bool:
    if record is None:
        return True
    excludes_sha256 = bool(record.hash_algorithms) and "sha256" not in record.hash_algorithms
    return record.is_testing or not record.is_for_email or excludes_sha256


def _select(name: str, records: Sequence[str], problems: list[Finding]) -> DkimKeyRecord | None:
    # Several TXT records: verifiers pick one (RFC 6376 3.6.2.2), so only a single key record is reliable.
    candidates = records if len(records) == 1 else [r for r in records if re.search(r"(^|;)\s*p\s*=", r)]
    if len(candidates) != 1:
        problems.append(
            Finding(FAILED, f"{name}: {len(candidates)} DKIM key records; verifiers pick any one, publish only one")
        )
        return None
    try:
        return parse_dkim_key_record(candidates[0])
    except DkimError as exc:
        problems.append(Finding(FAILED, f"{name}: {exc}"))
        return None


def _compare(
    name: str, record: DkimKeyRecord, algorithm: str, held: PublicKey, problems: list[Finding]
) -> tuple[bool, int | None]:
    if record.is_revoked:
        problems.append(Finding(FAILED, f"{name}: p= is empty: the key is revoked"))
        return False, None
    try:
        published = load_public_key(record.key_type, record.public_key_b64)
    except DkimError as exc:
        problems.append(Finding(FAILED, f"{name}: {exc}"))
        return False, None
    bits = published.key_size if isinstance(published, rsa.RSAPublicKey) else 0
    matches = same_public_key(published, held)
    if not matches:
        if record.key_type != algorithm:
            reason = f"k={record.key_type} but Dockspace signs with an {algorithm} key"
        else:
            reason = "the published key is not the one Dockspace signs with"
        problems.append(Finding(FAILED, f"{name}: {reason}"))
        return False, bits
    if bits and bits < RSA_MIN_BITS:
        problems.append(Finding(FAILED, f"{name}: a {bits}-bit RSA key: receivers ignore keys under {RSA_MIN_BITS}"))
    elif bits and bits < RSA_RECOMMENDED_BITS:
        problems.append(
            Finding(WARNING, f"{name}: a {bits}-bit RSA key: {RSA_RECOMMENDED_BITS} is recommended; rotate the key")
        )
    if not record.is_for_email:
        problems.append(Finding(FAILED, f"{name}: s={':'.join(record.service_types)}: the key is not for email"))
    if record.hash_algorithms and "sha256" not in record.hash_algorithms:
        problems.append(
            Finding(FAILED, f"{name}: h={':'.join(record.hash_algorithms)} excludes sha256, which Dockspace signs with")
        )
    if record.is_testing:
        problems.append(Finding(WARNING, f"{name}: t=y: testing mode, receivers may treat signatures as absent"))
    return True, bits
