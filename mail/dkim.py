"""DKIM signing keys and their DNS records: generate, read back, publish, name selectors. Pure.

A key is a pair (private_key_pem, public_key_b64) as mail.dms.snapshot.DkimKey holds it: the PEM is
PKCS#8; the public part is what goes after "p=" in the DNS record.
"""

import base64
import binascii
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from dockspace.validation import field_error

ALGORITHMS = ("rsa", "ed25519")
RSA_BITS = (1024, 2048, 3072, 4096)
DEFAULT_SELECTOR = "mail"  # what DMS's own `setup config dkim` uses
TXT_STRING_MAX = 255  # one DNS character-string (RFC 1035); longer TXT values are split into several

# Matched whole (fullmatch): "$" would also accept a final newline, which then breaks every DMS file.
_SELECTOR_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _check_algorithm(algorithm):
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm: {algorithm!r} is not one of {', '.join(ALGORITHMS)}.")


def generate_dkim_key(algorithm="rsa", bits=2048):
    """A fresh key: (PKCS#8 private key PEM, public key base64 for "p=").

    RSA: bits is one of RSA_BITS and p= is the DER SubjectPublicKeyInfo. Ed25519 (RFC 8463): bits is
    ignored and p= is the raw 32-byte public key. Raises ValueError naming 'algorithm' or 'bits'.
    """
    _check_algorithm(algorithm)
    if algorithm == "ed25519":
        private_key = ed25519.Ed25519PrivateKey.generate()
    else:
        if isinstance(bits, bool) or bits not in RSA_BITS:
            raise ValueError(f"bits: an RSA DKIM key has {', '.join(map(str, RSA_BITS))} bits, not {bits!r}.")
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    ).decode("ascii")
    return pem, _public_key_b64(private_key.public_key())


def _public_key_b64(public_key):
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)
    else:
        raw = public_key.public_bytes(
            encoding=serialization.Encoding.DER, format=serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return base64.b64encode(raw).decode("ascii")


def public_key_b64_from_pem(pem):
    """(algorithm, bits, public_key_b64) of an unencrypted private key PEM, PKCS#8 or PKCS#1 ("BEGIN RSA
    PRIVATE KEY", as opendkim-genkey writes). bits is 0 for Ed25519. Raises ValidationError naming
    'private_key_pem' for anything else, including RSA keys under 1024 bits (RFC 8301)."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # TypeError: the key is encrypted; ValueError: not PEM or damaged; UnsupportedAlgorithm: e.g. DSA.
        raise field_error("private_key_pem", "not an unencrypted PEM private key (RSA or Ed25519).") from exc
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "ed25519", 0, _public_key_b64(private_key.public_key())
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < RSA_BITS[0]:
            raise field_error(
                "private_key_pem",
                f"an RSA DKIM key needs at least {RSA_BITS[0]} bits, this one has {private_key.key_size}.",
            )
        return "rsa", private_key.key_size, _public_key_b64(private_key.public_key())
    raise field_error("private_key_pem", "DKIM signs with RSA or Ed25519 keys only.")


def rspamd_private_key(private_key_pem):
    """The private key as Rspamd reads it from a key file.

    RSA: the PEM unchanged. Ed25519: base64 of the 64-byte libsodium secret key (seed then public key),
    as `rspamadm dkim_keygen -t ed25519` writes it: Rspamd hands any PEM to its RSA loader, so an Ed25519
    PEM there fails with "cannot extract rsa key from evp key".
    """
    try:
        private_key = serialization.load_pem_private_key(private_key_pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise field_error("private_key_pem", "not an unencrypted PEM private key (RSA or Ed25519).") from exc
    if not isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key_pem
    seed = private_key.private_bytes(
        encoding=serialization.Encoding.Raw,
        format=serialization.PrivateFormat.Raw,
        encryption_algorithm=serialization.NoEncryption(),
    )
    public = private_key.public_key().public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
    )
    return base64.b64encode(seed + public).decode("ascii")


def dns_record_value(algorithm, public_key_b64):
    """The TXT value published at <selector>._domainkey.<domain>: "v=DKIM1; k=rsa; p=..."."""
    _check_algorithm(algorithm)
    if not public_key_b64 or not isinstance(public_key_b64, str):
        raise ValueError("public_key_b64: a public key is required.")
    try:
        base64.b64decode(public_key_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("public_key_b64: not base64.") from exc
    return f"v=DKIM1; k={algorithm}; p={public_key_b64}"


def split_txt_for_dns(value, chunk=TXT_STRING_MAX):
    """The TXT value cut into strings of at most `chunk` characters, to be written as consecutive quoted
    strings in one record (a zone file or DNS provider joins them back). An empty value is one empty string."""
    if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= TXT_STRING_MAX:
        raise ValueError(f"chunk: must be between 1 and {TXT_STRING_MAX}.")
    if not value.isascii():
        # The 255 limit counts bytes; DKIM records are ASCII, so characters and bytes agree.
        raise ValueError("value: a DKIM TXT value is ASCII.")
    return [value[i : i + chunk] for i in range(0, len(value), chunk)] or [""]


def validate_selector(selector, field="selector"):
    """Return the selector if it is one DNS label: 1-63 lower-case letters, digits and hyphens, not starting
    or ending with a hyphen. Raises ValidationError naming `field`."""
    if not isinstance(selector, str) or not _SELECTOR_RE.fullmatch(selector):
        raise field_error(
            field,
            f"{selector!r} is not valid; use 1-63 lower-case letters, digits and hyphens, "
            "not starting or ending with a hyphen.",
        )
    return selector


def next_selector(existing, today):
    """The selector for a domain's next key.

    The first key gets "mail" (DMS's default, so adopted and fresh domains look alike). A rotation gets
    "mail<YYYYMM>" of today's month, e.g. "mail202603", then "mail202603-2", "mail202603-3"... when that
    is taken: the old key's record stays published while the new one takes over, so the names must differ.
    `existing` is every selector the domain has or still publishes (compared without case).
    """
    taken = {selector.lower() for selector in existing}
    if not taken:
        return DEFAULT_SELECTOR
    base = f"{DEFAULT_SELECTOR}{today:%Y%m}"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate
