"""import_dms_files and the DMS files beyond accounts, quotas and aliases: blocks in the access tables
are adopted as suspended or disabled mailboxes (so taking over never unblocks anyone), blocks that
Dockspace cannot hold are reported as lines that would be lost, the files Dockspace never writes are
named and left alone, and a regex line in postfix-virtual.cf is pointed to postfix-regexp.cf."""

import io
import json

import pytest
from django.core.management import CommandError, call_command
from passlib.hash import sha512_crypt

from mail.dms.render import ACCOUNTS_PATH, QUOTAS_PATH, RECEIVE_ACCESS_PATH, SEND_ACCESS_PATH, VIRTUAL_PATH
from mail.models import Domain, Mailbox
from mail.tests.test_import_dms_files import run, run_failing

pytestmark = pytest.mark.django_db

ACCOUNTS = ["ann@example.com", "bob@example.com", "carol@example.com"]
LEFT_ALONE = {
    "postfix-regexp.cf": "/^old-(.*)@example\\.com$/ ann@example.com\n",
    "postfix-relaymap.cf": "@example.com [relay.example.net]:587\n",
    "postfix-sasl-password.cf": "@example.com user:secret\n",
}


def hashed(address):
    return "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash(address + " password")


@pytest.fixture
def dms(dms_dir):
    """An existing DMS setup in the directory Dockspace will take over."""
    dms_dir.mkdir(parents=True, exist_ok=True)
    (dms_dir / ACCOUNTS_PATH).write_text("".join(f"{a}|{hashed(a)}\n" for a in ACCOUNTS))
    (dms_dir / QUOTAS_PATH).write_text("")
    (dms_dir / VIRTUAL_PATH).write_text("info@example.com ann@example.com\n")
    (dms_dir / SEND_ACCESS_PATH).write_text("# blocked senders\nbob@example.com\tREJECT\n")
    (dms_dir / RECEIVE_ACCESS_PATH).write_text("carol@example.com REJECT\n")
    for name, text in LEFT_ALONE.items():
        (dms_dir / name).write_text(text)
    return dms_dir


def take_over():
    call_command("export_dms_files", "--force", stdout=io.StringIO(), stderr=io.StringIO())


def data_lines(path):
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def test_a_blocked_sender_stays_blocked_after_the_takeover(dms):
    out = run(dms)

    states = dict(Mailbox.objects.values_list("address", "state"))
    assert states == {"ann@example.com": "active", "bob@example.com": "suspended", "carol@example.com": "disabled"}
    assert "bob@example.com: blocked from sending in postfix-send-access.cf: adopted as suspended" in out
    assert "carol@example.com: refused mail in postfix-receive-access.cf: adopted as disabled" in out
    assert "Every line was adopted from postfix-accounts.cf, dovecot-quotas.cf, postfix-virtual.cf, " in out

    take_over()

    assert data_lines(dms / SEND_ACCESS_PATH) == ["bob@example.com\tREJECT"]
    assert data_lines(dms / RECEIVE_ACCESS_PATH) == ["carol@example.com\tREJECT"]
    accounts = "\n".join(data_lines(dms / ACCOUNTS_PATH))
    assert "ann@example.com|{SHA512-CRYPT}" in accounts  # the positive control: unblocked, unchanged
    assert "bob@example.com|" in accounts and accounts.count("|fail=y") == 1
    assert "carol@example.com|" not in accounts


def test_importing_the_taken_over_files_again_finds_everything_already_present(dms):
    run(dms)
    take_over()

    out = run(dms)

    assert "0 mailbox(es) created" in out
    assert "    mailbox bob@example.com\n" in out  # suspended: fail=y on its account line, and blocked from sending
    assert "postfix-receive-access.cf: carol@example.com REJECT" in out
    assert "NOT adopted" not in out


def test_a_block_dockspace_cannot_hold_is_listed_as_lost_and_the_dry_run_exits_1(dms):
    (dms / SEND_ACCESS_PATH).write_text("bob@example.com REJECT\nspammer@elsewhere.org REJECT\nann@example.com OK\n")
    (dms / RECEIVE_ACCESS_PATH).write_text("carol@example.com REJECT\ngone@example.com REJECT\n")

    error, out = run_failing(dms, "--dry-run")

    assert error.returncode == 1
    assert "would be lost when Dockspace takes the files over" in out
    assert (
        "postfix-send-access.cf:2: Dockspace blocks sending only for suspended mailboxes, and spammer@elsewhere.org "
        "has no account in postfix-accounts.cf: this block would be lost"
    ) in out
    assert "postfix-send-access.cf:3: expected address<TAB>REJECT; Dockspace manages only REJECT" in out
    assert "postfix-receive-access.cf:2: Dockspace refuses mail only for disabled mailboxes" in out
    assert not Mailbox.objects.exists()


def test_the_takeover_of_a_directory_with_lost_lines_needs_force(dms):
    (dms / SEND_ACCESS_PATH).write_text("spammer@elsewhere.org REJECT\n")
    run_failing(dms)

    with pytest.raises(CommandError) as refused:
        call_command("export_dms_files", stdout=io.StringIO())
    assert "holds files Dockspace did not write" in str(refused.value)
    assert data_lines(dms / SEND_ACCESS_PATH) == ["spammer@elsewhere.org REJECT"]


def test_the_files_dockspace_never_writes_are_named_and_left_as_they_are(dms):
    out = run(dms)

    assert "3 file(s) left alone (Dockspace never writes them; DMS keeps using them):" in out
    for name in LEFT_ALONE:
        assert f"    {name}\n" in out
    take_over()
    for name, text in LEFT_ALONE.items():
        assert (dms / name).read_text() == text


def test_a_regex_line_in_postfix_virtual_is_pointed_to_postfix_regexp(dms):
    (dms / VIRTUAL_PATH).write_text("info@example.com ann@example.com\n/^sales-.*@example\\.com$/ ann@example.com\n")

    error, out = run_failing(dms, "--dry-run")

    assert (
        "postfix-virtual.cf:2: a regular expression: Postfix reads those from postfix-regexp.cf, not from "
        "postfix-virtual.cf; move the line there"
    ) in out
    assert "not a valid domain name" not in out
    assert "alias info@example.com" in out  # the line before it is adopted as usual


def test_dkim_signing_settings_that_the_takeover_would_replace_are_reported(dms):
    conf = dms / "rspamd/override.d/dkim_signing.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text('domain { example.com { selector = "mail"; } }\n')

    error, out = run_failing(dms, "--dry-run")

    assert "rspamd/override.d/dkim_signing.conf: DKIM signing settings are not adopted" in out
    assert "rspamd/" not in out.split("left alone")[1].split("NOT adopted")[0]


# --- the lines Dockspace itself writes ----------------------------------------------------------


@pytest.fixture
def dockspace_data():
    """Mail state whose files hold every kind of line Dockspace writes on its own, REJECT lines included."""
    from accounts.models import User
    from mail import services
    from mail.tests.factories import make_domain, make_mailbox

    make_domain("example.com")
    for address in ("bob@example.com", "carol@example.com", "dave@example.com", "erin@example.com", "ida@bücher.de"):
        make_mailbox(address, password=None)
    for mailbox in Mailbox.objects.all():
        mailbox.person.mail_password_hash = hashed(mailbox.address)
        mailbox.person.save()
    services.mailbox_set_state(mailbox=Mailbox.objects.get(address="carol@example.com"), state="suspended")
    services.mailbox_set_state(mailbox=Mailbox.objects.get(address="dave@example.com"), state="disabled")
    User.objects.filter(email="erin@example.com").update(is_active=False)  # switched off: blocked from sending
    services.alias_create(address="@example.com", targets=["bob@example.com"])  # catch-all
    services.alias_create(address="info@example.com", targets=["bob@example.com", "dave@example.com"])  # one dead
    services.alias_create(address="old@example.com", targets=["dave@example.com"])  # every target dead: REJECT
    services.alias_create(address="bob@example.com", targets=["bob@elsewhere.org"], keep_copy=True)
    services.group_create(name="team", address="team@example.com", members=["bob@example.com", "ida@bücher.de"])
    services.group_create(name="empty", address="empty@example.com")  # no member: REJECT
    User.objects.create_user("frank@example.com", "frank's long password")  # signs in on a catch-all domain: REJECT
    services.dkim_generate(domain=Domain.objects.get(name="example.com"), algorithm="ed25519")


def test_the_files_dockspace_wrote_import_back_with_nothing_reported_lost(dockspace_data, dms_dir):
    from mail.dms.sync import dms_sync

    dms_sync()
    receive = data_lines(dms_dir / RECEIVE_ACCESS_PATH)
    assert {"dave@example.com\tREJECT", "old@example.com\tREJECT", "empty@example.com\tREJECT"} <= set(receive)
    assert "frank@example.com\tREJECT" in receive
    assert data_lines(dms_dir / SEND_ACCESS_PATH) == ["carol@example.com\tREJECT", "erin@example.com\tREJECT"]

    for args in (["--dry-run"], []):
        out = run(dms_dir, *args)
        assert "NOT adopted" not in out
        assert "0 mailbox(es) created" in out and "0 alias(es) created" in out
        for line in ("team@example.com bob@example.com,ida@xn--bcher-kva.de", "info@example.com bob@example.com"):
            assert f"{line} (regenerated)" in out  # lists, and an alias without its dead target
        for address in ("empty", "frank", "old"):
            assert f"{address}@example.com\tREJECT (regenerated)" in out
    assert json.loads(run(dms_dir, "--dry-run", "--json"))["not_adopted"] == []


def test_a_reject_line_dockspace_would_not_write_is_still_reported_lost(dockspace_data, dms_dir):
    from mail.dms.sync import dms_sync

    dms_sync()
    with open(dms_dir / RECEIVE_ACCESS_PATH, "a") as f:
        f.write("stranger@example.com\tREJECT\n")
    virtual = dms_dir / VIRTUAL_PATH
    team = "team@example.com bob@example.com,ida@xn--bcher-kva.de\n"
    virtual.write_text(virtual.read_text().replace(team, team + "  carol@example.com\n"))

    error, out = run_failing(dms_dir, "--dry-run")

    assert error.returncode == 1
    assert "stranger@example.com has no account in postfix-accounts.cf: this block would be lost" in out
    assert "empty@example.com\tREJECT (regenerated)" in out  # positive control: Dockspace's own lines
    # The same list line continued by a hand-added target is not Dockspace's line.
    assert "address: team@example.com is already a list." in out
