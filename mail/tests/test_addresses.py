import pytest
from django.core.exceptions import ValidationError

from dockspace.canonical import canonical_email
from dockspace.validation import error_lines
from mail.addresses import normalize_address, normalize_alias_address, normalize_domain


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Bob@Example.COM", "bob@example.com"),
        ("first.last+tag@example.com", "first.last+tag@example.com"),
        ("x@bücher.de", "x@xn--bcher-kva.de"),
        ("x@sub.example.co.uk", "x@sub.example.co.uk"),
    ],
)
def test_it_normalises_addresses_to_lower_case_and_punycode(raw, expected):
    assert normalize_address(raw) == expected


@pytest.mark.parametrize(
    "raw, rule",
    [
        ("bob smith@example.com", "spaces"),
        (" bob@example.com", "spaces"),
        ("bob@example.com\n", "spaces"),
        ("bob\x07@example.com", "control characters"),
        ("bo|b@example.com", "'|'"),
        ("bob:x@example.com", "':'"),
        ("bob,al@example.com", "','"),
        ("bob", "one '@'"),
        ("bob@@example.com", "one '@'"),
        ("@example.com", "before '@' is required"),
        ("bob@example", "at least one dot"),
        ("bob@-example.com", "not a valid domain"),
        ("a..b@example.com", "dots"),
        ("x" * 65 + "@example.com", "at most 64"),
        ("bob@example.123", "last label"),
        ("", "required"),
        ("#bob@example.com", "cannot start with '#'"),
    ],
)
def test_it_rejects_bad_addresses_naming_the_rule(raw, rule):
    with pytest.raises(ValidationError) as e:
        normalize_address(raw, "address")
    assert error_lines(e.value)[0].startswith("address: ")
    assert rule in error_lines(e.value)[0]


def test_a_catch_all_is_at_domain():
    assert normalize_alias_address("@Example.COM") == "@example.com"


@pytest.mark.parametrize("raw", ["exa mple.com", "example..com", "a" * 64 + ".com", "example.com|x", ""])
def test_it_rejects_bad_domain_names(raw):
    with pytest.raises(ValidationError):
        normalize_domain(raw)


def test_a_trailing_dot_is_dropped():
    assert normalize_domain("Example.com.") == "example.com"


@pytest.mark.parametrize("typed", ["root@ｅxample.com", "Root@Example.COM.", "root@Bücher.de"])
def test_mail_addresses_and_people_share_the_canonical_spelling(typed):
    assert normalize_address(typed.rstrip(".").replace("Root", "root")) == canonical_email(typed)
