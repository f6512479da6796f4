"""Snapshot -> DMS file bytes: exact content, order, headers, DKIM layouts and refusals."""

import base64
import dataclasses
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mail.dms.catalog import file_mode
from mail.dms.mail_files import render_files
from mail.dms.render import HEADER, ZONE_HEADER, dns_txt_name, dns_txt_value
from mail.dms.snapshot import Account, Alias, DkimKey, Snapshot

H = HEADER.encode()
HASH = "{SHA512-CRYPT}$6$saltsaltsaltsalt$hash"
PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDummy\n-----END PRIVATE KEY-----\n"
)
ED_SEED = bytes(range(32))
_ed = ed25519.Ed25519PrivateKey.from_private_bytes(ED_SEED)
ED_PEM = _ed.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
ED_PUBLIC_RAW = _ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
ED_PUBLIC = base64.b64encode(ED_PUBLIC_RAW).decode()
# What `rspamadm dkim_keygen -t ed25519` writes: base64 of the seed then the public key.
ED_RSPAMD = base64.b64encode(ED_SEED + ED_PUBLIC_RAW).decode()


def account(address, **kwargs):
    return Account(address=address, password_hash=HASH, **kwargs)


def rsa_key(domain, selector="mail", bits=2048, public="MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"):
    return DkimKey(domain, selector, "rsa", bits, PEM, public)


def ed_key(domain, selector="mail"):
    return DkimKey(domain, selector, "ed25519", 0, ED_PEM, ED_PUBLIC)


def test_accounts_are_sorted_by_length_then_address():
    snapshot = Snapshot(accounts=(account("bob@x.io"), account("ob@x.io"), account("al@x.io"), account("a@xx.io")))
    assert render_files(snapshot)["postfix-accounts.cf"] == H + (
        f"a@xx.io|{HASH}\nal@x.io|{HASH}\nob@x.io|{HASH}\nbob@x.io|{HASH}\n".encode()
    )


def test_a_suspended_account_keeps_its_line_and_refuses_login():
    snapshot = Snapshot(accounts=(account("me@x.io", is_suspended=True), account("you@x.io")))
    assert render_files(snapshot)["postfix-accounts.cf"] == H + (f"me@x.io|{HASH}|fail=y\nyou@x.io|{HASH}\n".encode())


def test_quota_lines_use_dms_units_and_skip_accounts_without_quota():
    snapshot = Snapshot(
        accounts=(
            account("bob@x.io", quota_bytes=2 * 1024**3),
            account("ob@x.io", quota_bytes=0),
            account("al@x.io", quota_bytes=1536 * 1024**2),
            account("nolimit@x.io"),
            account("tiny@x.io", quota_bytes=7),
            account("kb@x.io", quota_bytes=100 * 1024),
        )
    )
    assert render_files(snapshot)["dovecot-quotas.cf"] == H + (
        b"al@x.io:1536M\nkb@x.io:100k\nob@x.io:0\nbob@x.io:2G\ntiny@x.io:7B\n"
    )


@pytest.mark.parametrize(
    ("accounts", "aliases", "lines"),
    [
        pytest.param((), (Alias("info@x.io", ("me@x.io",)),), b"info@x.io me@x.io\n", id="one target"),
        pytest.param(
            (),
            (Alias("team@x.io", ("b@y.org", "a@x.io", "b@y.org")),),
            b"team@x.io b@y.org,a@x.io\n",
            id="targets joined in order, repeats dropped",
        ),
        pytest.param(
            (account("me@d.io"),),
            (Alias("me@d.io", ("other@x.org", "me@d.io")),),
            b"me@d.io other@x.org,me@d.io\n",
            id="forward and keep a copy",
        ),
        pytest.param(
            (),
            (Alias("bob@x.io", ("q@y.io",)), Alias("ob@x.io", ("q@y.io",)), Alias("@x.io", ("q@y.io",))),
            b"@x.io q@y.io\nob@x.io q@y.io\nbob@x.io q@y.io\n",
            id="shorter keys first",
        ),
        pytest.param(
            (account("me@d.io"), account("you@d.io"), account("boss@d.io"), account("me@other.io")),
            (Alias("@d.io", ("me@d.io",)), Alias("boss@d.io", ("me@d.io",))),
            b"@d.io me@d.io\nme@d.io me@d.io\nyou@d.io you@d.io\nboss@d.io me@d.io\n",
            id="catch-all: identity lines for accounts without their own line, none for other domains",
        ),
        pytest.param(
            (account("me@d.io"),),
            (Alias("info@d.io", ("me@d.io",)),),
            b"info@d.io me@d.io\n",
            id="no catch-all, no identity lines",
        ),
    ],
)
def test_virtual_has_one_line_per_key(accounts, aliases, lines):
    assert render_files(Snapshot(accounts=accounts, aliases=aliases))["postfix-virtual.cf"] == H + lines


def test_access_files_reject_each_address_once_in_order():
    files = render_files(Snapshot(send_blocked=("b@x.io", "a@x.io", "b@x.io"), receive_blocked=("c@x.io",)))
    assert files["postfix-send-access.cf"] == H + b"a@x.io\tREJECT\nb@x.io\tREJECT\n"
    assert files["postfix-receive-access.cf"] == H + b"c@x.io\tREJECT\n"


def test_an_empty_snapshot_still_writes_every_table_as_a_header_alone():
    assert render_files(Snapshot()) == {
        "dovecot-quotas.cf": H,
        "postfix-accounts.cf": H,
        "postfix-receive-access.cf": H,
        "postfix-send-access.cf": H,
        "postfix-virtual.cf": H,
    }


def test_opendkim_layout_writes_keys_tables_and_dns_snippets():
    long_public = "A" * 300
    snapshot = Snapshot(dkim_keys=(rsa_key("x.io", public=long_public), ed_key("b.org", selector="s1")))
    files = render_files(snapshot)
    assert sorted(files) == [
        "dovecot-quotas.cf",
        "opendkim/KeyTable",
        "opendkim/SigningTable",
        "opendkim/TrustedHosts",
        "opendkim/keys/b.org/s1.private",
        "opendkim/keys/b.org/s1.txt",
        "opendkim/keys/x.io/mail.private",
        "opendkim/keys/x.io/mail.txt",
        "postfix-accounts.cf",
        "postfix-receive-access.cf",
        "postfix-send-access.cf",
        "postfix-virtual.cf",
    ]
    assert files["opendkim/KeyTable"] == H + (
        b"s1._domainkey.b.org b.org:s1:/etc/opendkim/keys/b.org/s1.private\n"
        b"mail._domainkey.x.io x.io:mail:/etc/opendkim/keys/x.io/mail.private\n"
    )
    assert files["opendkim/SigningTable"] == H + b"*@b.org s1._domainkey.b.org\n*@x.io mail._domainkey.x.io\n"
    assert files["opendkim/TrustedHosts"] == H + b"127.0.0.1\nlocalhost\n"
    assert files["opendkim/keys/x.io/mail.private"] == PEM.encode()
    assert files["opendkim/keys/x.io/mail.txt"] == ZONE_HEADER.encode() + (
        b'mail._domainkey\tIN\tTXT\t( "v=DKIM1; k=rsa; "\n'
        b'\t  "p=' + b"A" * 248 + b'"\n'
        b'\t  "' + b"A" * 52 + b'" )  ; ----- DKIM key mail for x.io (rsa, 2048 bits)\n'
    )
    assert files["opendkim/keys/b.org/s1.txt"] == ZONE_HEADER.encode() + (
        b's1._domainkey\tIN\tTXT\t( "v=DKIM1; k=ed25519; "\n'
        b'\t  "p=' + ED_PUBLIC.encode() + b'" )  ; ----- DKIM key s1 for b.org (ed25519)\n'
    )
    assert files["opendkim/keys/b.org/s1.private"] == ED_PEM.encode()


def test_rspamd_layout_signs_for_every_domain():
    snapshot = Snapshot(
        dkim_keys=(rsa_key("x.io", bits=4096), ed_key("b.org", selector="2023-dkim")), dkim_layout="rspamd"
    )
    files = render_files(snapshot)
    assert not any(path.startswith("opendkim/") for path in files)
    assert files["rspamd/dkim/rsa-4096-mail-x.io.private.txt"] == PEM.encode()
    assert files["rspamd/dkim/ed25519-2023-dkim-b.org.private.txt"] == ED_RSPAMD.encode() + b"\n"
    assert files["rspamd/dkim/rsa-4096-mail-x.io.public.dns.txt"] == H + (
        b"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n"
    )
    conf = files["rspamd/override.d/dkim_signing.conf"].decode()
    assert "enabled = true;\n" in conf
    assert 'use_domain = "header";\n' in conf
    assert conf.endswith(
        "domain {\n"
        "    b.org {\n"
        '        path = "/tmp/docker-mailserver/rspamd/dkim/ed25519-2023-dkim-b.org.private.txt";\n'
        '        selector = "2023-dkim";\n'
        "    }\n"
        "    x.io {\n"
        '        path = "/tmp/docker-mailserver/rspamd/dkim/rsa-4096-mail-x.io.private.txt";\n'
        '        selector = "mail";\n'
        "    }\n"
        "}\n"
    )


def test_no_dkim_keys_means_no_opendkim_files_and_rspamd_signing_off():
    assert not any(path.startswith("opendkim/") for path in render_files(Snapshot()))
    files = render_files(Snapshot(dkim_layout="rspamd"))
    assert (
        files["rspamd/override.d/dkim_signing.conf"] == H + b"# No DKIM keys: Rspamd does not sign.\nenabled = false;\n"
    )
    assert not any(path.startswith("rspamd/dkim/") for path in files)


RICH = Snapshot(
    accounts=(
        account("bob@x.io", quota_bytes=1024**3),
        account("ob@x.io", is_suspended=True, quota_bytes=0),
        account("me@d.io"),
    ),
    aliases=(
        Alias("@x.io", ("me@d.io",)),
        Alias("me@d.io", ("other@elsewhere.net", "me@d.io")),
        Alias("team@d.io", ("bob@x.io", "me@d.io")),
    ),
    send_blocked=("ob@x.io",),
    receive_blocked=("bob@x.io",),
    dkim_keys=(rsa_key("x.io"), ed_key("d.io")),
)


@pytest.mark.parametrize("layout", ["opendkim", "rspamd"])
def test_every_file_is_lf_only_newline_terminated_and_never_empty(layout):
    for path, data in render_files(dataclasses.replace(RICH, dkim_layout=layout)).items():
        assert data, path
        assert data.endswith(b"\n"), path
        assert b"\r" not in data, path
        assert b"\n\n\n" not in data, path


@pytest.mark.parametrize("layout", ["opendkim", "rspamd"])
def test_every_file_but_a_key_starts_with_a_header_without_an_address(layout):
    for path, data in render_files(dataclasses.replace(RICH, dkim_layout=layout)).items():
        first_line = data.decode().split("\n", 1)[0]
        if file_mode(path) == 0o640:
            # OpenDKIM and Rspamd take a key for PEM only when the file starts with "-----BEGIN".
            assert first_line in ("-----BEGIN PRIVATE KEY-----", ED_RSPAMD), path
        else:
            assert first_line + "\n" in (HEADER, ZONE_HEADER), path
    assert "@" not in HEADER
    assert "@" not in ZONE_HEADER


def test_the_accounts_file_has_no_address_outside_account_lines():
    text = render_files(RICH)["postfix-accounts.cf"].decode()
    for line in text.splitlines():
        assert "@" not in line or "|" in line


def test_input_order_does_not_change_a_byte():
    shuffled = Snapshot(
        accounts=tuple(reversed(RICH.accounts)),
        aliases=tuple(reversed(RICH.aliases)),
        send_blocked=RICH.send_blocked,
        receive_blocked=RICH.receive_blocked,
        dkim_keys=tuple(reversed(RICH.dkim_keys)),
    )
    assert render_files(shuffled) == render_files(RICH)
    assert list(render_files(shuffled)) == sorted(render_files(RICH))


def test_a_pem_with_crlf_and_no_final_newline_is_written_with_lf():
    key = dataclasses.replace(rsa_key("x.io"), private_key_pem=PEM.replace("\n", "\r\n").rstrip())
    assert render_files(Snapshot(dkim_keys=(key,)))["opendkim/keys/x.io/mail.private"] == PEM.encode()


@pytest.mark.parametrize(
    ("key", "name", "value"),
    [
        (rsa_key("x.io", public="MIIB"), "mail._domainkey.x.io", "v=DKIM1; k=rsa; p=MIIB"),
        (ed_key("b.org", selector="s1"), "s1._domainkey.b.org", f"v=DKIM1; k=ed25519; p={ED_PUBLIC}"),
    ],
)
def test_dns_record_name_and_value(key, name, value):
    assert dns_txt_name(key) == name
    assert dns_txt_value(key) == value


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        ("opendkim/keys/x.io/mail.private", 0o640),
        ("rspamd/dkim/rsa-2048-mail-x.io.private.txt", 0o640),
        ("rspamd/dkim/rsa-2048-mail-x.io.public.dns.txt", 0o644),
        ("opendkim/keys/x.io/mail.txt", 0o644),
        ("opendkim/KeyTable", 0o644),
        ("postfix-accounts.cf", 0o600),
        ("postfix-virtual.cf", 0o644),
        ("dovecot-quotas.cf", 0o644),
    ],
)
def test_file_mode_keeps_private_keys_from_other_users(path, mode):
    assert file_mode(path) == mode


_UNWRITABLE = [
    (Snapshot(accounts=(account("a@x.io"), account("a@x.io"))), "appears twice"),
    (Snapshot(accounts=(Account("a@x.io", "{PLAIN}a\nb@x.io|{PLAIN}b"),)), "password hash"),
    (Snapshot(accounts=(Account("a@x.io", "{PLAIN}a:b"),)), "password hash"),
    (Snapshot(accounts=(account("#a@x.io"),)), "address"),
    (Snapshot(accounts=(account("a b@x.io"),)), "address"),
    (Snapshot(aliases=(Alias("a@x.io", ()),)), "no target"),
    (Snapshot(aliases=(Alias("a@x.io", ("b@x.io",)), Alias("a@x.io", ("c@x.io",)))), "appears twice"),
    (Snapshot(aliases=(Alias("a@x.io", ("b@x.io,c@x.io",)),)), "target"),
    (Snapshot(send_blocked=("a@x.io\tOK",)), "blocked address"),
    (Snapshot(dkim_keys=(rsa_key("x.io"), rsa_key("x.io", selector="two"))), "more than one DKIM key"),
    (Snapshot(dkim_keys=(rsa_key("../etc"),)), "DKIM domain"),
    (Snapshot(dkim_keys=(rsa_key("x.io", selector='m"; x'),)), "DKIM selector"),
    (Snapshot(dkim_keys=(rsa_key("x.io", public='AB" )'),)), "public key"),
    (Snapshot(dkim_keys=(dataclasses.replace(rsa_key("x.io"), algorithm="dsa"),)), "algorithm"),
    (Snapshot(dkim_keys=(dataclasses.replace(rsa_key("x.io"), private_key_pem=" \n"),)), "private key"),
    (Snapshot(dkim_keys=(rsa_key("x.io"),), dkim_layout="amavis"), "layout"),
    (
        Snapshot(dkim_keys=(dataclasses.replace(ed_key("x.io"), private_key_pem=PEM),), dkim_layout="rspamd"),
        "not a readable Ed25519 key",
    ),
]


@pytest.mark.parametrize(("snapshot", "message"), _UNWRITABLE)
def test_it_refuses_a_snapshot_that_would_break_a_file(snapshot, message):
    with pytest.raises(ValueError, match=message):
        render_files(snapshot)


@pytest.mark.parametrize(("snapshot", "message"), [case for case in _UNWRITABLE if "layout" not in case[1]])
def test_with_on_skip_it_reports_a_value_that_would_break_a_file_and_writes_everything_else(snapshot, message):
    good = account("good@x.io")
    snapshot = dataclasses.replace(snapshot, accounts=(*snapshot.accounts, good))
    reported = []

    files = render_files(snapshot, on_skip=reported.append)

    assert reported and re.search(message, reported[0])
    accounts = files["postfix-accounts.cf"].decode().splitlines()
    assert f"good@x.io|{good.password_hash}" in accounts
    text = b"".join(files.values()).decode("utf-8", "replace")
    assert "\nb@x.io|" not in text and "a b@x.io" not in text and "{PLAIN}a:b" not in text
    assert all(line.count("|") <= 2 for line in accounts)


def test_with_on_skip_a_bad_key_leaves_the_other_domains_keys_and_tables_whole():
    snapshot = Snapshot(dkim_keys=(rsa_key("x.io"), rsa_key("y.io", selector="mail\n")))
    reported = []

    files = render_files(snapshot, on_skip=reported.append)

    assert reported == ["DKIM selector 'mail\\n' of y.io cannot be written to a DMS file"]
    assert "opendkim/keys/x.io/mail.private" in files
    assert not any("y.io" in path for path in files)
    assert b"y.io" not in files["opendkim/KeyTable"] + files["opendkim/SigningTable"]


def test_an_address_whose_dots_match_another_line_comes_before_it():
    # DMS greps "a.b@x.io:" unanchored, and '.' matches '-': a.b's own line must be the first hit.
    accounts = (
        Account(address="a-b@x.io", password_hash="{SHA512-CRYPT}$6$a$b", quota_bytes=1024),
        Account(address="a.b@x.io", password_hash="{SHA512-CRYPT}$6$a$b", quota_bytes=2048),
    )
    quotas = render_files(Snapshot(accounts=accounts))["dovecot-quotas.cf"].decode().splitlines()[1:]
    assert quotas == ["a.b@x.io:2k", "a-b@x.io:1k"]
