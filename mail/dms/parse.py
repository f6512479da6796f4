"""DMS config files -> Snapshot, the inverse of `mail.dms.render`, pure and tolerant of hand and `setup` edits.

Every parser returns (entries, problems): a bad line is reported with its number and skipped, never raised.
"""

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.core.exceptions import ValidationError

from dockspace.validation import error_lines
from mail.addresses import normalize_address, normalize_alias_address, normalize_domain
from mail.dms.render import (
    ACCOUNTS_PATH,
    OPENDKIM_DIR,
    QUOTAS_PATH,
    RECEIVE_ACCESS_PATH,
    RSPAMD_DKIM_DIR,
    RSPAMD_DKIM_DIR_IN_CONTAINER,
    RSPAMD_SIGNING_CONF_PATH,
    SEND_ACCESS_PATH,
    VIRTUAL_PATH,
    DkimRows,
    catch_all_domains,
    is_identity_line,
    redact_account_line,
)
from mail.dms.snapshot import DKIM_LAYOUT_OPENDKIM, DKIM_LAYOUT_RSPAMD, Account, Alias, DkimKey, Snapshot
from mail.quota import parse_quota


@dataclass(frozen=True)
class Problem:
    """A line (or, with line_number None, a whole file) that could not be taken as it is."""

    path: str
    line_number: int | None
    line: str
    reason: str

    def __str__(self) -> str:
        where = self.path if self.line_number is None else f"{self.path}:{self.line_number}"
        return f"{where}: {self.reason}"


_HASH_RE = re.compile(r"\{[A-Za-z0-9][A-Za-z0-9._-]*\}[^\s|:]+")
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]+=*")
_SELECTOR_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
# Dovecot passdb fields that refuse sign-in. `fail` (what Dockspace writes) refuses IMAP, POP3 and
# Postfix's SASL alike; `nologin` alone refuses only IMAP/POP3 logins, so it is read as suspended
# (to adopt it) and then shows up as drift until the line is rewritten with `fail=y`.
_NOLOGIN_FIELDS = {"fail", "fail=y", "fail=yes", "nologin", "nologin=y", "nologin=yes"}


def _message(error: Exception) -> str:
    return error_lines(error)[0] if isinstance(error, ValidationError) else str(error)


def _text_lines(text: str) -> Iterator[tuple[int, str]]:
    """(number, line) for each physical line; CR is dropped everywhere, as DMS's own `sed 's|\\r||g'` does."""
    return enumerate(text.replace("\r", "").split("\n"), start=1)


def _lines(text: str) -> Iterator[tuple[int, str, str]]:
    """(number, raw line, stripped line) for each line that is neither blank nor a '#' comment."""
    for number, raw in _text_lines(text):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield number, raw, line


def _table_lines(text: str) -> Iterator[tuple[int, str, str]]:
    """Postfix table lines: as `_lines`, but a line starting with whitespace continues the one before."""
    pending: tuple[int, str, str] | None = None
    for number, raw in _text_lines(text):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw[0].isspace() and pending is not None:
            pending = (pending[0], f"{pending[1]} {stripped}", f"{pending[2]} {stripped}")
            continue
        if pending is not None:
            yield pending
        pending = (number, raw, stripped)
    if pending is not None:
        yield pending


def _redact_hash(raw: str) -> str:
    """A problem line is shown to admins and may be logged: keep the scheme of a hash, never the hash."""
    return redact_account_line(raw)


class _Lines:
    """The problems a parser found in one file, and which line each key was first on."""

    problems: list[Problem]
    _first_line: dict[str, int]

    def __init__(self, path: str, shown: Callable[[str], str] = lambda raw: raw) -> None:
        self.path, self.problems, self._shown, self._first_line = path, [], shown, {}

    def problem(self, number: int, raw: str, reason: str) -> None:
        self.problems.append(Problem(self.path, number, self._shown(raw), reason))

    def address(self, text: str, number: int, raw: str) -> str | None:
        """The normalised address, or None once the reason it is not one is reported."""
        try:
            return normalize_address(text)
        except ValidationError as e:
            self.problem(number, raw, _message(e))
            return None

    def is_repeat(self, key: str, number: int, raw: str, reason: str = "{key} is already on line {first}") -> bool:
        """Whether key was on an earlier line (then this one is reported with reason); else its line is noted."""
        if key in self._first_line:
            self.problem(number, raw, reason.format(key=key, first=self._first_line[key]))
            return True
        self._first_line[key] = number
        return False


def parse_accounts(text: str, path: str = ACCOUNTS_PATH) -> tuple[list[Account], list[Problem]]:
    """postfix-accounts.cf -> ([Account], problems). Quotas are not in this file: quota_bytes is None."""
    accounts, found = [], _Lines(path, _redact_hash)
    for number, raw, line in _lines(text):
        fields = [field.strip() for field in line.split("|")]
        if len(fields) < 2:
            found.problem(number, raw, "expected address|{SCHEME}hash: there is no '|'")
            continue
        if len(fields) > 3:
            found.problem(number, raw, "expected address|{SCHEME}hash[|extra fields]: there are too many '|'")
            continue
        address = found.address(fields[0], number, raw)
        if address is None:
            continue
        if not _HASH_RE.fullmatch(fields[1]):
            reason = "the password hash must start with its scheme, like {SHA512-CRYPT}$6$..., with no spaces or ':'"
            found.problem(number, raw, reason)
            continue
        extra = fields[2].split() if len(fields) == 3 else []
        is_suspended = any(field in _NOLOGIN_FIELDS for field in extra)
        unknown = [f for f in extra if f not in _NOLOGIN_FIELDS and not f.startswith("reason=")]
        if unknown:
            reason = f"extra field {unknown[0]!r} is not managed by Dockspace and will be dropped at the next sync"
            found.problem(number, raw, reason)
        if found.is_repeat(address, number, raw, "{key} is already on line {first}; the first line wins"):
            continue
        accounts.append(Account(address=address, password_hash=fields[1], is_suspended=is_suspended))
    return accounts, found.problems


def _quota_entries(text: str, path: str) -> tuple[list[tuple[int, str, str, int]], list[Problem]]:
    entries, found = [], _Lines(path)
    for number, raw, line in _lines(text):
        address_text, colon, quota_text = line.partition(":")
        if not colon:
            found.problem(number, raw, "expected address:quota, like bob@example.com:10G")
            continue
        try:
            address = normalize_address(address_text.strip())
            n_bytes = parse_quota(quota_text.strip())
        except ValidationError as e:
            found.problem(number, raw, _message(e))
            continue
        if not found.is_repeat(address, number, raw):
            entries.append((number, raw, address, n_bytes))
    return entries, found.problems


def parse_quotas(text: str, path: str = QUOTAS_PATH) -> tuple[dict[str, int], list[Problem]]:
    """dovecot-quotas.cf -> ({address: bytes}, problems); 0 means no limit. The first line of an address wins."""
    entries, problems = _quota_entries(text, path)
    return {address: n_bytes for _, _, address, n_bytes in entries}, problems


def parse_virtual(text: str, path: str = VIRTUAL_PATH) -> tuple[list[Alias], list[Problem]]:
    """postfix-virtual.cf -> ([Alias], problems). Identity lines (`a a`) are aliases too; the first key wins."""
    aliases, found = [], _Lines(path)
    for number, raw, line in _table_lines(text):
        parts = line.split(None, 1)
        key_text, value = parts[0], parts[1] if len(parts) == 2 else ""
        if key_text.startswith("/"):
            reason = "a regular expression: Postfix reads those from postfix-regexp.cf, not from postfix-virtual.cf"
            found.problem(number, raw, reason + "; move the line there")
            continue
        target_texts = [t for t in re.split(r"[,\s]+", value) if t]
        if not target_texts:
            found.problem(number, raw, "expected address target[,target...]: there is no target")
            continue
        try:
            address = normalize_alias_address(key_text, "alias")
            targets = tuple(dict.fromkeys(normalize_address(t, "target") for t in target_texts))
        except ValidationError as e:
            found.problem(number, raw, _message(e))
            continue
        if not found.is_repeat(address, number, raw, "{key} is already on line {first}; Postfix uses the first line"):
            aliases.append(Alias(address=address, targets=targets))
    return aliases, found.problems


def parse_access(text: str, path: str = SEND_ACCESS_PATH) -> tuple[list[str], list[Problem]]:
    """postfix-send-access.cf / postfix-receive-access.cf -> ([address], problems) for `address REJECT` lines."""
    addresses, found = [], _Lines(path)
    for number, raw, line in _table_lines(text):
        parts = line.split()
        if len(parts) < 2 or parts[1].upper() != "REJECT":
            found.problem(number, raw, "expected address<TAB>REJECT; Dockspace manages only REJECT")
            continue
        address = found.address(parts[0], number, raw)
        if address is not None and not found.is_repeat(address, number, raw, "{key} is listed twice"):
            addresses.append(address)
    return addresses, found.problems


# DKIM ------------------------------------------------------------------------------------------------


def _key_from_pem(pem: str) -> tuple[str, int, str] | None:
    """(algorithm, bits, public key as DNS p=) for a private key cryptography can read, else None."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return "rsa", key.key_size, base64.b64encode(der).decode()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "ed25519", 0, base64.b64encode(raw).decode()
    return None


def _rsa_bits_from_public(public_b64: str) -> int | None:
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_b64, validate=True))
    except (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error):
        return None
    return key.key_size if isinstance(key, rsa.RSAPublicKey) else None


def _dkim_tags(value: str) -> dict[str, str]:
    tags = {}
    for part in value.split(";"):
        name, equals, tag_value = part.partition("=")
        if equals:
            tags[name.strip()] = re.sub(r"\s+", "", tag_value)
    return tags


def _parse_zone_snippet(text: str) -> tuple[dict[str, str], str]:
    """A `<selector>.txt` zone snippet -> (DKIM tags, comment text): quoted strings joined, ';' comments apart."""
    strings: list[str] = []
    comments: list[str] = []
    current: list[str]
    for _, line in _text_lines(text):
        in_quote, current = False, []
        for index, char in enumerate(line):
            if char == '"':
                if in_quote:
                    strings.append("".join(current))
                    current = []
                in_quote = not in_quote
            elif in_quote:
                current.append(char)
            elif char == ";":
                comments.append(line[index + 1 :])
                break
    return _dkim_tags("".join(strings)), " ".join(comments)


def _parse_dns_value_file(text: str) -> dict[str, str]:
    """A `.public.dns.txt` file: the bare record value, possibly quoted."""
    value = " ".join(line for _, _, line in _lines(text))
    if '"' in value:
        value = "".join(re.findall(r'"([^"]*)"', value))
    return _dkim_tags(value)


def _pem_text(text: str) -> str:
    return text.replace("\r", "").strip() + "\n"


def _pem_from_rspamd_key(text: str) -> str | None:
    """An Rspamd key file holds a PEM, or for Ed25519 the base64 libsodium key (seed, then public key)."""
    stripped = text.strip()
    if stripped.startswith("-----"):
        return _pem_text(text)
    try:
        raw = base64.b64decode("".join(stripped.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) not in (32, 64):
        return None
    key = ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32])
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _dkim_key(
    domain: str,
    selector: str,
    pem: str,
    tags: Mapping[str, str],
    bits_hint: int | None,
    path: str,
    problems: list[Problem],
) -> DkimKey | None:
    """Put a DkimKey together from what the files say; the private key, when readable, is the truth."""
    if not pem.strip():
        problems.append(Problem(path, None, "", "the private key file is empty"))
        return None
    from_pem = _key_from_pem(pem)
    public = tags.get("p")
    if public and not _BASE64_RE.fullmatch(public):
        problems.append(Problem(path, None, "", "the published public key (p=) is not base64"))
        return None
    if public:
        algorithm = tags.get("k", "rsa")
        bits = bits_hint if bits_hint is not None else (_rsa_bits_from_public(public) or 0)
        if from_pem is not None:
            if from_pem[2] != public:
                problems.append(Problem(path, None, "", "the published public key does not match the private key"))
            algorithm, bits, public = from_pem
    elif from_pem is not None:
        algorithm, bits, public = from_pem
    else:
        problems.append(Problem(path, None, "", "no public key file next to it and the private key cannot be read"))
        return None
    if algorithm not in ("rsa", "ed25519"):
        problems.append(Problem(path, None, "", f"unknown DKIM key type k={algorithm}"))
        return None
    if algorithm == "ed25519":
        bits = 0
    elif not bits:
        problems.append(Problem(path, None, "", "the RSA key size cannot be told from the files"))
    return DkimKey(
        domain=domain,
        selector=selector,
        algorithm=algorithm,
        bits=bits,
        private_key_pem=pem,
        public_key_b64=public,
    )


_OPENDKIM_KEY_RE = re.compile(rf"{OPENDKIM_DIR}/keys/([^/]+)/([^/]+)\.private")


def _parse_opendkim(texts: Mapping[str, str], problems: list[Problem]) -> list[DkimKey]:
    keys = []
    table_path = f"{OPENDKIM_DIR}/KeyTable"
    in_key_table = set()
    for number, raw, line in _lines(texts.get(table_path, "")):
        fields = line.split()
        parts = fields[1].split(":") if len(fields) == 2 else []
        if len(parts) != 3:
            reason = "expected <selector>._domainkey.<domain> <domain>:<selector>:<key path>"
            problems.append(Problem(table_path, number, raw, reason))
            continue
        in_key_table.add((parts[0].lower(), parts[1]))
    for path in sorted(texts):
        match = _OPENDKIM_KEY_RE.fullmatch(path)
        if match is None:
            continue
        try:
            domain = normalize_domain(match.group(1), "DKIM key folder")
        except ValidationError as e:
            problems.append(Problem(path, None, "", _message(e)))
            continue
        selector = match.group(2)
        if not _SELECTOR_RE.fullmatch(selector):
            problems.append(Problem(path, None, "", f"'{selector}' is not a DKIM selector"))
            continue
        tags, comment = _parse_zone_snippet(texts.get(path[: -len(".private")] + ".txt", ""))
        bits = re.search(r"\b(\d+) bits\b", comment)
        key = _dkim_key(
            domain, selector, _pem_text(texts[path]), tags, int(bits.group(1)) if bits else None, path, problems
        )
        if key is None:
            continue
        is_listed = not in_key_table or (domain, selector) in in_key_table
        if not is_listed:
            problems.append(Problem(path, None, "", "this key is not in opendkim/KeyTable: OpenDKIM does not use it"))
        keys.append((not is_listed, path, key))
    # A rotated-out key may still sit next to the one in use: prefer the one the KeyTable lists.
    return _one_key_per_domain(sorted(keys, key=lambda entry: entry[:2]), problems)


def _one_key_per_domain(entries: Iterable[tuple[bool, str, DkimKey]], problems: list[Problem]) -> list[DkimKey]:
    keys: dict[str, DkimKey] = {}
    for _, path, key in entries:
        if key.domain in keys:
            reason = f"{key.domain} already has a DKIM key (selector {keys[key.domain].selector}): this one is ignored"
            problems.append(Problem(path, None, "", reason))
            continue
        keys[key.domain] = key
    return list(keys.values())


_CONF_BLOCK_RE = re.compile(r'("?)([A-Za-z0-9._-]+)\1\s*\{([^{}]*)\}')


def _parse_rspamd(texts: Mapping[str, str], problems: list[Problem]) -> list[DkimKey]:
    conf = texts.get(RSPAMD_SIGNING_CONF_PATH, "")
    uncommented = "\n".join(re.sub(r"#.*", "", line) for _, line in _text_lines(conf))
    found: list[tuple[bool, str, DkimKey]] = []
    used: set[str] = set()
    for match in _CONF_BLOCK_RE.finditer(uncommented):
        number = uncommented.count("\n", 0, match.start()) + 1
        name, body = match.group(2), match.group(3)
        path_match = re.search(r'\bpath\s*=\s*"([^"]*)"', body)
        selector_match = re.search(r'\bselector\s*=\s*"([^"]*)"', body)
        if path_match is None or selector_match is None:
            problems.append(Problem(RSPAMD_SIGNING_CONF_PATH, number, name, "a domain block needs path and selector"))
            continue
        try:
            domain = normalize_domain(name, "dkim_signing.conf domain")
        except ValidationError as e:
            problems.append(Problem(RSPAMD_SIGNING_CONF_PATH, number, name, _message(e)))
            continue
        key_path, selector = path_match.group(1), selector_match.group(1)
        if not _SELECTOR_RE.fullmatch(selector):
            problems.append(Problem(RSPAMD_SIGNING_CONF_PATH, number, name, f"'{selector}' is not a DKIM selector"))
            continue
        prefix = RSPAMD_DKIM_DIR_IN_CONTAINER + "/"
        relative = RSPAMD_DKIM_DIR + "/" + key_path[len(prefix) :] if key_path.startswith(prefix) else None
        if relative is None or relative not in texts:
            reason = f"key file {key_path} is not in {RSPAMD_DKIM_DIR}/"
            problems.append(Problem(RSPAMD_SIGNING_CONF_PATH, number, name, reason))
            continue
        used.add(relative)
        filename = relative.rsplit("/", 1)[1]
        bits_match = re.fullmatch(rf"rsa-(\d+)-{re.escape(selector)}-{re.escape(domain)}\.private\.txt", filename)
        is_ed25519 = filename == f"ed25519-{selector}-{domain}.private.txt"
        base = relative.removesuffix(".private.txt")
        tags = _parse_dns_value_file(texts.get(base + ".public.dns.txt", ""))
        if "p" not in tags:
            tags = _parse_zone_snippet(texts.get(base + ".public.txt", ""))[0]
        if "k" not in tags and (bits_match or is_ed25519):
            tags["k"] = "rsa" if bits_match else "ed25519"
        bits = int(bits_match.group(1)) if bits_match else None
        pem = _pem_from_rspamd_key(texts[relative])
        if pem is None:
            problems.append(Problem(relative, None, "", "neither a PEM key nor an Rspamd Ed25519 key"))
            continue
        key = _dkim_key(domain, selector, pem, tags, bits, relative, problems)
        if key is not None:
            found.append((False, relative, key))
    keys = _one_key_per_domain(found, problems)
    for path in sorted(texts):
        if path.startswith(RSPAMD_DKIM_DIR + "/") and path.endswith(".private.txt") and path not in used:
            problems.append(Problem(path, None, "", "not used: no domain block in dkim_signing.conf points to it"))
    return keys


def _is_rspamd_dkim(path: str) -> bool:
    return path == RSPAMD_SIGNING_CONF_PATH or path.startswith(RSPAMD_DKIM_DIR + "/")


def parse_dkim(texts: Mapping[str, str]) -> tuple[DkimRows, list[Problem]]:
    """{path: text} of a DMS config dir -> (DkimRows, problems): the keys of the layout the files use."""
    problems: list[Problem] = []
    keys, layout = _parse_dkim(texts, problems)
    return DkimRows(tuple(keys), layout), problems


def _parse_dkim(texts: Mapping[str, str], problems: list[Problem]) -> tuple[list[DkimKey], str]:
    has_rspamd = any(_is_rspamd_dkim(path) for path in texts)
    has_opendkim = any(_OPENDKIM_KEY_RE.fullmatch(path) for path in texts)
    if not has_rspamd:
        return _parse_opendkim(texts, problems), DKIM_LAYOUT_OPENDKIM
    if has_opendkim:
        reason = "there are DKIM keys for both OpenDKIM and Rspamd: only the Rspamd ones were read"
        problems.append(Problem(OPENDKIM_DIR, None, "", reason))
    return _parse_rspamd(texts, problems), DKIM_LAYOUT_RSPAMD


# Everything ------------------------------------------------------------------------------------------


def _decode(files: Mapping[str, bytes | str], problems: list[Problem]) -> dict[str, str]:
    texts = {}
    for path, data in files.items():
        try:
            texts[path] = data.decode() if isinstance(data, bytes) else data
        except UnicodeDecodeError:
            problems.append(Problem(path, None, "", "not UTF-8 text: the file was skipped"))
    return texts


def parse_files(files: Mapping[str, bytes | str]) -> tuple[Snapshot, list[Problem]]:
    """{path: bytes} of a DMS config dir -> (mail's Snapshot, problems);
    parse_files(mail_files.render_files(s))[0] == s.normalized()."""
    problems: list[Problem] = []
    texts = _decode(files, problems)

    accounts, found = parse_accounts(texts.get(ACCOUNTS_PATH, ""))
    problems += found
    quota_entries, found = _quota_entries(texts.get(QUOTAS_PATH, ""), QUOTAS_PATH)
    problems += found
    quotas = {}
    known = {account.address for account in accounts}
    for number, raw, address, n_bytes in quota_entries:
        if address in known:
            quotas[address] = n_bytes
        else:
            problems.append(Problem(QUOTAS_PATH, number, raw, f"{address} has no line in {ACCOUNTS_PATH}"))
    accounts = [Account(a.address, a.password_hash, a.is_suspended, quotas.get(a.address)) for a in accounts]

    aliases, found = parse_virtual(texts.get(VIRTUAL_PATH, ""))
    problems += found
    # Identity lines the renderer adds so that a catch-all leaves real mailboxes alone are not aliases.
    domains = catch_all_domains(aliases)
    aliases = [alias for alias in aliases if not is_identity_line(alias, known, domains)]

    send_blocked, found = parse_access(texts.get(SEND_ACCESS_PATH, ""), SEND_ACCESS_PATH)
    problems += found
    receive_blocked, found = parse_access(texts.get(RECEIVE_ACCESS_PATH, ""), RECEIVE_ACCESS_PATH)
    problems += found

    dkim, found = parse_dkim(texts)
    problems += found

    snapshot = Snapshot(
        accounts=tuple(accounts),
        aliases=tuple(aliases),
        send_blocked=tuple(send_blocked),
        receive_blocked=tuple(receive_blocked),
        dkim_keys=dkim.keys,
        dkim_layout=dkim.layout,
    )
    return snapshot.normalized(), problems
