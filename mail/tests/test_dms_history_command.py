import io

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from mail import services
from mail.dms import sync

pytestmark = pytest.mark.django_db


def _run(*args):
    out = io.StringIO()
    call_command("dms_history", *args, stdout=out)
    return out.getvalue()


def test_an_operator_can_list_and_restore_the_previous_version_of_a_file():
    services.domain_create(name="example.com")
    mailbox = services.mailbox_create(address="bob@example.com", quota=1024**3)
    sync.dms_sync()
    services.mailbox_update(mailbox=mailbox, quota=2 * 1024**3)
    sync.dms_sync()
    quotas = settings.DMS_DIR / "dovecot-quotas.cf"
    assert "bob@example.com:2G" in quotas.read_text()

    assert "dovecot-quotas.cf" in _run("list")
    listing = _run("list", "dovecot-quotas.cf").splitlines()
    assert len(listing) == 1
    sha = listing[0].split()[2]
    out = _run("restore", "dovecot-quotas.cf", sha[:8])
    assert "Restored dovecot-quotas.cf" in out
    assert "bob@example.com:1G" in quotas.read_text()
    # The version it replaced is kept too, and the next sync writes the database's truth again.
    assert len(_run("list", "dovecot-quotas.cf").splitlines()) == 2
    sync.dms_sync()
    assert "bob@example.com:2G" in quotas.read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (("list", "postfix-accounts.cf"), "no stored versions"),
        (("restore", "postfix-accounts.cf", "zz"), "4 to 64 hex digits"),
        (("restore", "../etc/passwd", "abcd"), ".."),
    ],
)
def test_bad_requests_exit_with_a_clear_message(args, message):
    with pytest.raises(CommandError) as e:
        _run(*args)
    assert message in str(e.value)
