"""Mailbox quotas as DMS writes them ("10G", "512M", "0" = no limit): parse, format and show, pure."""

import re

from dockspace.validation import field_error

# Binary units, exactly the letters DMS's `setup quota set` accepts (lower-case k included).
UNITS = {"B": 1, "k": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}

# The rule DMS validates with: ^([0-9]+(B|k|M|G|T)|0)$
QUOTA_RE = re.compile(r"([0-9]+)(B|k|M|G|T)|0")

# Quotas are stored in a 64-bit signed column; anything larger is certainly a typo.
MAX_QUOTA_BYTES = 2**63 - 1

RULE = "a whole number followed by one unit letter B, k, M, G or T (binary: 1k = 1024 bytes), or 0 for no limit"

_HUMAN_UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def _hint(text):
    # Said after the RULE: a hint adds what this input got wrong and never repeats the rule itself.
    if any(ch.isspace() for ch in text):
        return "Write it without spaces, like 10G."
    if text.startswith("-"):
        return "A quota cannot be negative."
    if re.fullmatch(r"[0-9]+K", text):
        return f"Write a lower-case k: {text[:-1]}k."
    if re.fullmatch(r"[0-9]+", text):
        return f"Add a unit letter, like {text}M; only 0 stands alone."
    if re.fullmatch(r"[0-9]+[bmgt]", text):
        return f"Unit letters are case-sensitive: {text[:-1]}{text[-1].upper()}."
    if re.fullmatch(r"[0-9.,]+[A-Za-z]+", text):
        return "For example 10G or 1536M, not 10GB or 1.5G."
    return ""


def parse_quota(text, field="quota"):
    """'10G' -> 10737418240, '0' -> 0 (no limit). Raises ValidationError naming the field and the rule."""
    if not isinstance(text, str) or not text:
        raise field_error(field, f"a quota is required: {RULE}.")
    match = QUOTA_RE.fullmatch(text)
    if match is None:
        hint = _hint(text)
        raise field_error(field, f"'{text}' is not a quota: use {RULE}." + (f" {hint}" if hint else ""))
    if text == "0":
        return 0
    if len(match.group(1)) > 20:  # longer than any quota that fits, and int() refuses 4300+ digits
        raise field_error(field, f"'{text[:30]}...' is too large (at most {format_quota(MAX_QUOTA_BYTES)}).")
    n_bytes = int(match.group(1)) * UNITS[match.group(2)]
    if n_bytes > MAX_QUOTA_BYTES:
        raise field_error(field, f"'{text}' is too large (at most {format_quota(MAX_QUOTA_BYTES)}).")
    return n_bytes


def format_quota(n_bytes):
    """Bytes -> the shortest exact DMS spelling: 0 -> '0', 2 GiB -> '2G', 1.5 GiB -> '1536M', 7 -> '7B'."""
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, int) or n_bytes < 0:
        raise ValueError(f"a quota is a whole number of bytes, not {n_bytes!r}")
    if n_bytes == 0:
        return "0"
    for letter in ("T", "G", "M", "k"):
        if n_bytes % UNITS[letter] == 0:
            return f"{n_bytes // UNITS[letter]}{letter}"
    return f"{n_bytes}B"


def humanize_quota(n_bytes):
    """For display: 0 -> 'no limit', None -> 'server default', 2 GiB -> '2 GiB', 1.5 GiB -> '1.5 GiB'."""
    if n_bytes is None:
        return "server default"
    if n_bytes == 0:
        return "no limit"
    for name, size in _HUMAN_UNITS:
        if n_bytes >= size:
            value = f"{n_bytes / size:.1f}".removesuffix(".0")
            return f"{value} {name}"
    return "1 byte" if n_bytes == 1 else f"{n_bytes} bytes"
