"""Quota strings as DMS writes them: parse_quota, format_quota, humanize_quota."""

import pytest
from django.core.exceptions import ValidationError

from dockspace.validation import error_lines
from mail.quota import format_quota, humanize_quota, parse_quota

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("text", "n_bytes"),
    [
        ("0", 0),
        ("7B", 7),
        ("0B", 0),
        ("100k", 100 * KiB),
        ("512M", 512 * MiB),
        ("1536M", 1536 * MiB),
        ("10G", 10 * GiB),
        ("2T", 2 * TiB),
        ("007M", 7 * MiB),
    ],
)
def test_it_accepts_what_dms_accepts(text, n_bytes):
    assert parse_quota(text) == n_bytes


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("10 GB", "without spaces"),
        (" 10G", "without spaces"),
        ("10G\n", "without spaces"),
        ("-1", "A quota cannot be negative."),
        ("-5G", "cannot be negative"),
        ("10K", "lower-case k: 10k"),
        ("10GB", "For example 10G or 1536M, not 10GB or 1.5G."),
        ("1.5G", "For example 10G or 1536M"),
        ("1,5G", "For example 10G or 1536M"),
        ("1024", "Add a unit letter, like 1024M"),
        ("00", "Add a unit letter"),
        ("10g", "case-sensitive: 10G"),
        ("10m", "case-sensitive: 10M"),
        ("G", ""),
        ("ten", ""),
        ("１０G", ""),
    ],
)
def test_it_rejects_everything_else_naming_the_field_the_rule_and_a_hint(text, hint):
    with pytest.raises(ValidationError) as raised:
        parse_quota(text, field="quota of bob@example.com")
    message = error_lines(raised.value)[0]
    assert message.startswith(f"quota of bob@example.com: '{text}' is not a quota")
    assert "unit letter B, k, M, G or T" in message
    assert "0 for no limit" in message
    assert hint in message
    # The rule is said once: no hint repeats the unit letters or what 0 means.
    assert message.count("B, k, M, G") == 1
    assert message.count("no limit") == 1


@pytest.mark.parametrize("value", ["", None, 10])
def test_it_requires_a_string(value):
    with pytest.raises(ValidationError) as raised:
        parse_quota(value)
    assert error_lines(raised.value)[0].startswith("quota: a quota is required: a whole number")


def test_it_rejects_a_quota_too_large_to_store():
    assert parse_quota("8388607T") == 8388607 * TiB
    with pytest.raises(ValidationError, match="too large"):
        parse_quota("8388608T")


@pytest.mark.parametrize(
    ("n_bytes", "text"),
    [
        (0, "0"),
        (7, "7B"),
        (1023, "1023B"),
        (1024, "1k"),
        (100 * KiB, "100k"),
        (1536 * MiB, "1536M"),
        (2 * GiB, "2G"),
        (GiB + 1, f"{GiB + 1}B"),
        (3 * TiB, "3T"),
        (1024 * TiB, "1024T"),
    ],
)
def test_format_uses_the_largest_unit_that_divides_exactly(n_bytes, text):
    assert format_quota(n_bytes) == text
    assert parse_quota(text) == n_bytes


@pytest.mark.parametrize("value", [-1, 1.5, "10G", None, True])
def test_format_refuses_what_is_not_a_byte_count(value):
    with pytest.raises(ValueError):
        format_quota(value)


@pytest.mark.parametrize(
    ("n_bytes", "shown"),
    [
        (None, "server default"),
        (0, "no limit"),
        (1, "1 byte"),
        (7, "7 bytes"),
        (100 * KiB, "100 KiB"),
        (2 * GiB, "2 GiB"),
        (1536 * MiB, "1.5 GiB"),
        (5 * TiB, "5 TiB"),
    ],
)
def test_humanize_is_for_people(n_bytes, shown):
    assert humanize_quota(n_bytes) == shown
