"""What a real Dovecot does with postfix-accounts.cf lines once DMS has turned them into its passwd-file:
who may log in over IMAP, whom Postfix's SASL check accepts, and who still receives mail."""

import imaplib
import smtplib

import pytest

from mail.dms.render import render_postfix_accounts
from mail.dms.snapshot import Account
from mail.tests.dovecot_server import (
    dms_userdb_lines,
    hash_password,
    running_dovecot,
    skip_unless_dovecot_23,
    skip_unless_protocol,
)

PASSWORD = "Corr3ct-horse-battery"
WRONG = "Corr3ct-horse-batterz"

ACTIVE = "active@example.test"
# What Dockspace must render for a suspended account: passdb `fail` refuses every authentication
# (IMAP and Postfix SASL alike) while userdb lookups, hence LMTP delivery, ignore it.
SUSPENDED = "suspended@example.test"
SUSPENDED_FIELD = "fail=y"
# `nologin=y` alone: refused by imap-login, but Postfix's SASL request still gets an OK.
NOLOGIN_ONLY = "nologin@example.test"
BOTH = "both@example.test"

THIRD_FIELDS = {ACTIVE: "", SUSPENDED: SUSPENDED_FIELD, NOLOGIN_ONLY: "nologin=y", BOTH: "nologin=y fail=y"}

H = "{SHA512-CRYPT}$6$saltsaltsaltsalt$hash"


@pytest.fixture(scope="module")
def dovecot():
    skip_unless_dovecot_23()
    password_hash = hash_password(PASSWORD)
    # The active and suspended lines are what Dockspace's renderer writes, so a change there is tested here.
    rendered = render_postfix_accounts(
        [
            Account(address=ACTIVE, password_hash=password_hash),
            Account(address=SUSPENDED, password_hash=password_hash, is_suspended=True),
        ]
    ).decode()
    assert f"{SUSPENDED}|{password_hash}|{SUSPENDED_FIELD}\n" in rendered
    lines = [rendered.rstrip("\n")]
    for address in (NOLOGIN_ONLY, BOTH):
        lines.append(f"{address}|{password_hash}|{THIRD_FIELDS[address]}")
    with running_dovecot("\n".join(lines) + "\n", quotas_text=f"{SUSPENDED}:1M\n") as server:
        yield server


def imap_login(server, address, password):
    client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
    try:
        client.login(address, password)
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        client.shutdown()


@pytest.mark.parametrize(
    ("accounts", "quotas", "virtual", "expected"),
    [
        pytest.param(f"a@x.io|{H}\n", "", "", f"a@x.io:{H}:5000:5000::/var/mail/x.io/a/home::\n", id="active"),
        pytest.param(
            f"a@x.io|{H}|fail=y\n", "", "", f"a@x.io:{H}:5000:5000::/var/mail/x.io/a/home::fail=y\n", id="suspended"
        ),
        pytest.param(
            f"a@x.io|{H}|fail=y\n",
            "a@x.io:1G\n",
            "",
            f"a@x.io:{H}:5000:5000::/var/mail/x.io/a/home::fail=y userdb_quota_rule=*:bytes=1G\n",
            id="quota-after-third-field",
        ),
        pytest.param(
            f"ob@x.io|{H}\n",
            "bob@x.io:5M\nob@x.io:0\n",
            "",
            f"ob@x.io:{H}:5000:5000::/var/mail/x.io/ob/home::userdb_quota_rule=*:bytes=5M\n",
            id="quota-grep-is-unanchored",
        ),
        pytest.param(
            f"# header\n\n   \n  # indented comment\nb@y.io|{H}\nb@y.io|{H}\n",
            "",
            "",
            f"b@y.io:{H}:5000:5000::/var/mail/y.io/b/home::\n",
            id="comments-blanks-and-duplicates-dropped",
        ),
        pytest.param(
            f"a@x.io|{H}|fail=y\n",
            "",
            "al@x.io a@x.io\nout@x.io someone@elsewhere.org\nbare a@x.io\n",
            f"a@x.io:{H}:5000:5000::/var/mail/x.io/a/home::fail=y\nal@x.io:{H}:5000:5000::/var/mail/x.io/a::fail=y\n",
            id="alias-dummy-copies-hash-and-third-field",
        ),
    ],
)
def test_dms_userdb_line_carries_the_third_field_as_extra_fields(accounts, quotas, virtual, expected):
    assert dms_userdb_lines(accounts, quotas_text=quotas, virtual_text=virtual) == expected


def test_dms_userdb_refuses_an_alias_whose_target_line_has_no_hash():
    with pytest.raises(ValueError, match="a@x.io"):
        dms_userdb_lines("a@x.io\n", virtual_text="al@x.io a@x.io\n")


def test_active_account_logs_in_over_imap_with_its_password(dovecot):
    skip_unless_protocol("imap")
    assert imap_login(dovecot, ACTIVE, PASSWORD)


# Each refusal costs Dovecot 2.3 about half a second (failures are answered on a 500 ms timer): keep few.
@pytest.mark.parametrize("address", [ACTIVE, SUSPENDED])
def test_a_wrong_password_is_refused_over_imap_and_postfix_sasl(dovecot, address):
    assert not dovecot.sasl_plain(address, WRONG).is_ok
    assert dovecot.auth_test(address, WRONG).returncode != 0
    skip_unless_protocol("imap")
    assert not imap_login(dovecot, address, WRONG)


@pytest.mark.parametrize(
    ("address", "is_accepted"),
    [(ACTIVE, True), (SUSPENDED, False), (NOLOGIN_ONLY, False), (BOTH, False)],
    ids=["active", "fail=y", "nologin=y", "nologin=y+fail=y"],
)
def test_imap_accepts_the_right_password_only_for_an_active_account(dovecot, address, is_accepted):
    skip_unless_protocol("imap")
    assert imap_login(dovecot, address, PASSWORD) is is_accepted


@pytest.mark.parametrize(
    ("address", "is_accepted"),
    # nologin=y is enforced by imap-login/pop3-login only: the auth server still answers OK, and Postfix
    # (xsasl_dovecot_server.c) takes any OK as a successful SMTP AUTH, so that account could still send.
    [(ACTIVE, True), (SUSPENDED, False), (NOLOGIN_ONLY, True), (BOTH, False)],
    ids=["active", "fail=y", "nologin=y", "nologin=y+fail=y"],
)
def test_postfix_sasl_accepts_the_right_password_unless_passdb_fails_it(dovecot, address, is_accepted):
    reply = dovecot.sasl_plain(address, PASSWORD)
    assert reply.is_ok is is_accepted
    assert reply.fields.get("user") == address
    assert (dovecot.auth_test(address, PASSWORD).returncode == 0) is is_accepted


def test_suspended_account_is_still_found_by_userdb_with_its_quota(dovecot):
    fields = dovecot.user_fields(SUSPENDED)
    assert fields is not None
    assert fields["home"] == f"{dovecot.mail_root}/example.test/suspended/home"
    assert fields["quota_rule"] == "*:bytes=1M"
    assert "fail" not in fields
    assert dovecot.user_fields("nobody-here@example.test") is None


def test_suspended_account_still_receives_mail_over_lmtp(dovecot):
    skip_unless_protocol("lmtp")
    message = f"From: sender@example.org\r\nTo: {SUSPENDED}\r\nSubject: still delivered\r\n\r\nHello.\r\n"
    with smtplib.LMTP("127.0.0.1", dovecot.lmtp_port, timeout=10) as lmtp:
        refused = lmtp.sendmail("sender@example.org", [SUSPENDED], message)
    assert refused == {}
    delivered = dovecot.delivered_messages(SUSPENDED)
    assert len(delivered) == 1
    assert b"Subject: still delivered" in delivered[0].read_bytes()


def test_lmtp_refuses_an_address_that_has_no_account_line(dovecot):
    skip_unless_protocol("lmtp")
    with smtplib.LMTP("127.0.0.1", dovecot.lmtp_port, timeout=10) as lmtp, pytest.raises(smtplib.SMTPRecipientsRefused):
        lmtp.sendmail("sender@example.org", ["removed@example.test"], "Subject: x\r\n\r\nx\r\n")
