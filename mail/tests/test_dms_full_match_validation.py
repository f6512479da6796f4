"""Finding 16: validation matches the whole value. A pattern ending in `$` also accepts a final line break,
which then breaks a DMS file; through the commands, each bad value is refused next to its good twin."""

import pytest

from mail.addresses import normalize_domain, normalize_local_part
from mail.dkim import validate_selector
from mail.models import DkimKey, Mailbox
from mail.tests.factories import make_domain, refused, run

pytestmark = pytest.mark.django_db


def test_dkim_generate_refuses_a_selector_ending_in_a_line_break_and_takes_the_same_without_it():
    make_domain("example.com")

    message = refused("dkim", "generate", "example.com", "--selector", "mail2\n", "--algorithm", "ed25519")

    assert "selector" in message and "1-63 lower-case letters" in message
    assert not DkimKey.objects.exists()
    run("dkim", "generate", "example.com", "--selector", "mail2", "--algorithm", "ed25519")
    assert DkimKey.objects.get().selector == "mail2"


def test_mailbox_add_refuses_an_address_with_a_line_break_before_the_at_and_takes_the_same_without_it():
    make_domain("example.com")

    refused("mailbox", "add", "bob\n@example.com")

    run("mailbox", "add", "bob@example.com")
    assert Mailbox.objects.filter(address="bob@example.com").exists()


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (validate_selector, "mail", "mail\n"),
        (normalize_local_part, "bob", "bob\n"),
        (normalize_domain, "example.com", "example.com\n"),
    ],
)
def test_every_validator_refuses_a_final_line_break(check, good, bad):
    from django.core.exceptions import ValidationError

    assert check(good)
    with pytest.raises(ValidationError):
        check(bad)


def test_the_patterns_themselves_match_whole_values_only():
    # The address checks above also refuse control characters before any pattern runs; the patterns
    # must hold on their own, so a later refactoring of those checks cannot reopen the hole.
    from mail import addresses, dkim

    for pattern, value in [(dkim._SELECTOR_RE, "mail"), (addresses._LOCAL_RE, "bob"), (addresses._LABEL_RE, "io")]:
        assert pattern.fullmatch(value)
        assert not pattern.fullmatch(value + "\n")
        assert not pattern.pattern.endswith("$")
