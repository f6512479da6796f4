"""Mail addresses and domain names as DMS files can hold them: normalised, validated, pure."""

import re

import idna

from dockspace.canonical import canonical_domain
from dockspace.validation import field_error

DOMAIN_MAX_LENGTH = 253
LOCAL_MAX_LENGTH = 64
ADDRESS_MAX_LENGTH = 254

# Characters that would break a DMS file line or a Postfix table: field separators and whitespace.
_FORBIDDEN = {"|": "a '|'", ":": "a ':'", ",": "a ','"}
# Both are matched whole (fullmatch): "$" would also accept a final newline.
_LOCAL_RE = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{}~-]+)*")
_LABEL_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _reject_unsafe(value, field, what="an address"):
    for ch in value:
        if ch.isspace() or ord(ch) < 32 or ord(ch) == 127:
            raise field_error(field, "spaces, line breaks and control characters are not allowed.")
    for ch, name in _FORBIDDEN.items():
        if ch in value:
            raise field_error(field, f"{name} is not allowed in {what}.")


def normalize_domain(value, field="domain"):
    """Lower case, IDNA (punycode) for non-ASCII names, no trailing dot. Raises ValidationError."""
    raw = value if isinstance(value, str) else ""
    if raw != raw.strip():
        raise field_error(field, "spaces are not allowed in a domain name.")
    _reject_unsafe(raw, field, "a domain name")
    if not raw.rstrip("."):
        raise field_error(field, "a domain name is required.")
    # The one canonical spelling people's sign-in addresses use too (dockspace.canonical).
    try:
        name = canonical_domain(raw)
    except ValueError:
        raise field_error(field, f"'{raw}' is not a valid international domain name.") from None
    labels = name.split(".")
    if len(labels) < 2 or len(name) > DOMAIN_MAX_LENGTH or not all(_LABEL_RE.fullmatch(label) for label in labels):
        raise field_error(
            field, f"'{raw}' is not a valid domain name (labels of letters, digits and hyphens, at least one dot)."
        )
    if labels[-1].isdigit():
        raise field_error(field, f"'{raw}' is not a valid domain name (the last label cannot be a number).")
    for label in labels:
        if label.startswith("xn--") and not _is_valid_a_label(label):
            raise field_error(
                field,
                f"'{raw}' is not a valid domain name ('{label}' is not valid punycode for an "
                "international name; type the name in its own letters instead).",
            )
    return name


def _is_valid_a_label(label):
    """An 'xn--' label decodes under IDNA 2008 and encodes back to itself (no over-long or mixed forms)."""
    try:
        return idna.encode(idna.decode(label)).decode("ascii") == label
    except (idna.IDNAError, UnicodeError):
        return False


def normalize_local_part(value, field="address"):
    local = (value or "").lower()
    if not local:
        raise field_error(field, "the part before '@' is required.")
    if len(local) > LOCAL_MAX_LENGTH:
        raise field_error(field, f"the part before '@' can be at most {LOCAL_MAX_LENGTH} characters.")
    if local.startswith("#"):
        raise field_error(field, "the part before '@' cannot start with '#' (DMS would read the line as a comment).")
    if not _LOCAL_RE.fullmatch(local):
        raise field_error(
            field,
            f"'{value}' before '@' may use letters, digits, dots (not first, last or doubled) "
            "and !#$%&'*+/=?^_`{}~-.",
        )
    return local


def normalize_address(value, field="address"):
    """'Bob@Example.COM' -> 'bob@example.com'. Raises ValidationError naming the field and the rule."""
    if not isinstance(value, str) or not value:
        raise field_error(field, "an email address is required.")
    if value != value.strip():
        raise field_error(field, "spaces are not allowed in an address.")
    _reject_unsafe(value, field)
    if value.count("@") != 1:
        raise field_error(field, f"'{value}' is not an email address (expected one '@', like name@example.com).")
    local, domain = value.split("@")
    address = f"{normalize_local_part(local, field)}@{normalize_domain(domain, field)}"
    if len(address) > ADDRESS_MAX_LENGTH:
        raise field_error(field, f"an address can be at most {ADDRESS_MAX_LENGTH} characters.")
    return address


def normalize_alias_address(value, field="address"):
    """An alias address: 'user@domain', or '@domain' for a catch-all."""
    if isinstance(value, str) and value.startswith("@"):
        return "@" + normalize_domain(value[1:], field)
    return normalize_address(value, field)


def split_address(address):
    """'bob@example.com' -> ('bob', 'example.com'); '@example.com' -> ('', 'example.com')."""
    local, _, domain = address.rpartition("@")
    return local, domain


def plus_warning(address):
    """A warning for an address whose part before '@' holds '+' (None otherwise): DMS configures '+'
    as the recipient delimiter, so Postfix and Dovecot read 'a+b@d' as 'a@d' with the tag 'b'."""
    local, domain = split_address(address or "")
    if "+" not in local:
        return None
    base = local.split("+", 1)[0] or "?"
    return (
        f"{address} contains '+', which DMS uses as the recipient delimiter: mail to it may be delivered to "
        f"{base}@{domain} or refused. Prefer '.', '-' or '_' in addresses."
    )
