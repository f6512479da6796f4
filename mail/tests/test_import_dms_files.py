"""manage.py import_dms_files: an existing DMS config directory becomes Dockspace domains, people,
mailboxes and aliases; people keep their passwords; bad lines are reported with file and line number."""

import io
import json
import shutil
import subprocess

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from passlib.hash import bcrypt, sha512_crypt

from accounts.models import AuditEvent, User
from mail import services
from mail.dms.render import ACCOUNTS_PATH, QUOTAS_PATH, VIRTUAL_PATH
from mail.dms.sync import rendered_files
from mail.models import Alias, Domain, Mailbox

ACTOR = "manage.py import_dms_files"
GIB = 1024**3

PASSWORDS = {
    "ann@example.com": "ann's old dms password",
    "bob@example.com": "bob's old dms password",
    "carol@other.org": "carol's old dms password",
}


def doveadm_hash(password):
    if shutil.which("doveadm") is None:
        pytest.skip("doveadm (Debian package dovecot-core) is not installed")
    out = subprocess.run(
        ["doveadm", "pw", "-s", "SHA512-CRYPT", "-p", password], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.fixture
def hashes():
    return {
        "ann@example.com": doveadm_hash(PASSWORDS["ann@example.com"]),
        "bob@example.com": "{BLF-CRYPT}" + bcrypt.using(ident="2y", rounds=5).hash(PASSWORDS["bob@example.com"]),
        "carol@other.org": "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash(PASSWORDS["carol@other.org"]),
    }


# Written the way Dockspace renders them, so the round trip can be compared line by line.
VIRTUAL = [
    "@other.org carol@other.org",
    "team@example.com info@example.com,bob@example.com",  # an alias to an alias defined further down
    "info@example.com ann@example.com",
    "carol@other.org carol@other.org",  # identity line: regenerated for the catch-all domain
    "ann@example.com ann@elsewhere.net,ann@example.com",  # forward and keep a copy
]
QUOTAS = ["ann@example.com:2G", "bob@example.com:0"]


def write_dir(path, accounts="", quotas="", virtual=""):
    path.mkdir(exist_ok=True)
    (path / ACCOUNTS_PATH).write_text(accounts)
    (path / QUOTAS_PATH).write_text(quotas)
    (path / VIRTUAL_PATH).write_text(virtual)
    return path


@pytest.fixture
def source_dir(tmp_path, hashes):
    accounts = "".join(f"{address}|{hashed}\n" for address, hashed in hashes.items())
    return write_dir(
        tmp_path / "old-dms",
        accounts="# DMS accounts\n" + accounts,
        quotas="\n".join(QUOTAS) + "\n",
        virtual="\n".join(VIRTUAL) + "\n",
    )


def run(directory, *args):
    out = io.StringIO()
    call_command("import_dms_files", "--from", str(directory), *args, stdout=out)
    return out.getvalue()


def run_failing(directory, *args):
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_dms_files", "--from", str(directory), *args, stdout=out)
    return caught.value, out.getvalue()


def counts():
    return (
        Domain.objects.count(),
        User.objects.count(),
        Mailbox.objects.count(),
        Alias.objects.count(),
        AuditEvent.objects.count(),
    )


def content_lines(data):
    return {line for line in data.decode().splitlines() if line and not line.startswith("#")}


@pytest.mark.django_db
def test_each_adopted_person_signs_in_to_dockspace_with_their_dms_password(source_dir, hashes):
    run(source_dir)

    for address, password in PASSWORDS.items():
        person = User.objects.get(email=address)
        assert person.mail_password_hash == hashes[address]
        assert authenticate(email=address, password=password) == person
        assert authenticate(email=address, password=password + "x") is None


@pytest.mark.django_db
def test_domains_mailboxes_and_quotas_are_adopted(source_dir):
    out = run(source_dir)

    assert set(Domain.objects.values_list("name", flat=True)) == {"example.com", "other.org"}
    assert dict(Mailbox.objects.values_list("address", "quota")) == {
        "ann@example.com": 2 * GIB,
        "bob@example.com": 0,
        "carol@other.org": 0,  # no quota line: the new domain's default, none
    }
    assert "3 mailbox(es) created" in out
    assert "Every line was adopted from postfix-accounts.cf," in out


@pytest.mark.django_db
def test_aliases_catch_alls_and_keep_a_copy_are_adopted_and_identity_lines_skipped(source_dir):
    out = run(source_dir)

    aliases = {a.address: (a.target_list, a.keep_copy) for a in Alias.objects.prefetch_related("targets")}
    assert aliases == {
        "@other.org": (["carol@other.org"], False),
        "team@example.com": (["info@example.com", "bob@example.com"], False),
        "info@example.com": (["ann@example.com"], False),
        "ann@example.com": (["ann@elsewhere.net"], True),
    }
    assert f"{VIRTUAL_PATH}:4: carol@other.org carol@other.org (regenerated)" in out


@pytest.mark.django_db
def test_the_files_rendered_from_the_adopted_database_match_the_source(source_dir):
    run(source_dir)

    files = rendered_files()

    assert content_lines(files[ACCOUNTS_PATH]) == content_lines((source_dir / ACCOUNTS_PATH).read_bytes())
    assert content_lines(files[VIRTUAL_PATH]) == set(VIRTUAL)
    assert set(QUOTAS) <= content_lines(files[QUOTAS_PATH])


@pytest.mark.django_db
def test_a_second_run_creates_nothing_and_reports_everything_as_present(source_dir):
    run(source_dir)
    before = counts()

    out = run(source_dir, "--json")

    report = json.loads(out)
    assert counts()[:4] == before[:4]
    assert report["created"] == {"domains": [], "mailboxes": [], "aliases": []}
    assert len(report["already_present"]) == 3 + 4
    assert report["not_adopted"] == []


@pytest.mark.django_db
def test_a_dry_run_reports_the_same_and_changes_nothing(source_dir):
    before = counts()

    dry = json.loads(run(source_dir, "--dry-run", "--json"))

    assert counts() == before
    real = json.loads(run(source_dir, "--json"))
    assert dry.pop("dry_run") is True and real.pop("dry_run") is False
    assert dry == real
    assert len(dry["created"]["mailboxes"]) == 3 and len(dry["created"]["aliases"]) == 4


@pytest.mark.django_db
def test_a_dry_run_says_so_in_its_text_report(source_dir):
    out = run(source_dir, "--dry-run")

    assert out.startswith("Dry run (nothing saved) of adopting")
    assert "Every line would be adopted from postfix-accounts.cf," in out


@pytest.mark.django_db
def test_a_line_that_is_not_utf8_is_reported_and_the_others_adopted(tmp_path):
    hashed = "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash("good old password")
    path = tmp_path / "old-dms"
    path.mkdir()
    (path / ACCOUNTS_PATH).write_bytes(f"ren\xe9@example.com|{hashed}\nok@example.com|{hashed}\n".encode("latin-1"))

    error, out = run_failing(path)

    assert f"{ACCOUNTS_PATH}:1: not UTF-8 text" in out
    assert list(Mailbox.objects.values_list("address", flat=True)) == ["ok@example.com"]


@pytest.mark.django_db
def test_each_run_is_audited_once_besides_the_services_own_events(source_dir):
    run(source_dir)
    run(source_dir)

    events = AuditEvent.objects.filter(actor_label=ACTOR)
    assert events.filter(action="mail.dms.import").count() == 2
    assert events.filter(action="mail.mailbox.add").count() == 3
    assert events.filter(action="mail.alias.add").count() == 4


BAD_ACCOUNTS = (
    "# accounts\n"  # 1
    "good@example.com|{HASH}\n"  # 2
    "bareuser|{HASH}\n"  # 3: no domain
    "nopipe@example.com\n"  # 4: no '|'
    "cram@example.com|{{CRAM-MD5}}e02d374fde0dc75a17a557039a3a5338c7743304777dccd376f332bee68d2cf6\n"  # 5
    "good@example.com|{HASH}\n"  # 6: duplicate
)
BAD_QUOTAS = (
    "good@example.com:10 G\n"  # 1: not a quota
    "ghost@example.com:1G\n"  # 2: no account
)
BAD_VIRTUAL = (
    "missing@example.com nobody@example.com\n"  # 1: target on a managed domain that does not exist
    "loop1@example.com loop2@example.com\n"  # 2
    "loop2@example.com loop1@example.com\n"  # 3
    "fine@example.com good@example.com\n"  # 4
    "bare external@example.net\n"  # 5: no domain
)


@pytest.fixture
def bad_dir(tmp_path):
    hashed = "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash("good old password")
    return write_dir(
        tmp_path / "bad", accounts=BAD_ACCOUNTS.format(HASH=hashed), quotas=BAD_QUOTAS, virtual=BAD_VIRTUAL
    )


@pytest.mark.django_db
def test_lines_that_cannot_be_adopted_are_reported_with_file_and_line_and_exit_1(bad_dir):
    error, out = run_failing(bad_dir, "--json")

    assert error.returncode == 1
    reported = {(p["file"], p["line"]) for p in json.loads(out)["not_adopted"]}
    assert reported == {
        (ACCOUNTS_PATH, 3),
        (ACCOUNTS_PATH, 4),
        (ACCOUNTS_PATH, 5),
        (ACCOUNTS_PATH, 6),
        (QUOTAS_PATH, 1),
        (QUOTAS_PATH, 2),
        (VIRTUAL_PATH, 1),
        (VIRTUAL_PATH, 2),
        (VIRTUAL_PATH, 3),
        (VIRTUAL_PATH, 5),
    }


@pytest.mark.django_db
def test_the_reasons_say_what_is_wrong_without_showing_a_hash(bad_dir):
    _, out = run_failing(bad_dir)

    assert f"{ACCOUNTS_PATH}:5: password_hash: Dockspace cannot verify the CRAM-MD5 scheme" in out
    assert "e02d374f" not in out and "$6$" not in out
    assert f"{VIRTUAL_PATH}:1: " in out and "nobody@example.com is on a managed domain but is not" in out
    assert f"{VIRTUAL_PATH}:2: " in out and "forwarding loop: loop1@example.com -> loop2@example.com" in out
    assert "2 line(s) NOT adopted" not in out and "10 line(s) NOT adopted" in out


@pytest.mark.django_db
def test_the_good_lines_are_adopted_beside_the_bad_ones(bad_dir):
    run_failing(bad_dir)

    assert list(Mailbox.objects.values_list("address", flat=True)) == ["good@example.com"]
    assert list(Alias.objects.values_list("address", flat=True)) == ["fine@example.com"]
    assert authenticate(email="good@example.com", password="good old password") is not None


@pytest.mark.django_db
def test_a_dry_run_with_bad_lines_exits_1_and_saves_nothing(bad_dir):
    before = counts()

    error, out = run_failing(bad_dir, "--dry-run")

    assert error.returncode == 1
    assert "nothing was saved" in str(error)
    assert counts() == before


@pytest.mark.django_db
def test_an_existing_mailbox_with_another_password_is_reported_not_overwritten(source_dir):
    services.domain_create(name="example.com", actor_label="test")
    mailbox = services.mailbox_create(address="ann@example.com", password="a newer dockspace password", actor_label="t")
    kept = mailbox.person.mail_password_hash

    error, out = run_failing(source_dir)

    assert error.returncode == 1
    assert f"{ACCOUNTS_PATH}:2: ann@example.com is already a mailbox with a different password" in out
    mailbox.person.refresh_from_db()
    assert mailbox.person.mail_password_hash == kept
    assert authenticate(email="ann@example.com", password="a newer dockspace password") == mailbox.person


@pytest.mark.django_db
def test_a_person_who_already_signs_in_keeps_their_dockspace_password(tmp_path):
    person = User.objects.create_user("dora@example.com", "dora's dockspace password")
    hashed = "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash("dora's dms password")

    out = run(write_dir(tmp_path / "old-dms", accounts=f"dora@example.com|{hashed}\n"))

    person.refresh_from_db()
    assert person.mailbox.address == "dora@example.com"
    assert person.mail_password_hash == hashed
    assert authenticate(email="dora@example.com", password="dora's dockspace password") == person
    assert "dora@example.com already had a Dockspace password" in out


@pytest.mark.django_db
def test_a_suspended_account_is_adopted_suspended(tmp_path):
    hashed = "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash("eve's dms password")

    run(write_dir(tmp_path / "old-dms", accounts=f"eve@example.com|{hashed}|fail=y\n"))

    assert Mailbox.objects.get().state == Mailbox.SUSPENDED


@pytest.mark.django_db
@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p / "nowhere", "does not exist"),
        (lambda p: (p / "file.cf").write_text("x") and p / "file.cf", "is not a directory"),
        (lambda p: p, "holds none of postfix-accounts.cf"),
    ],
)
def test_a_directory_that_cannot_be_read_is_a_clear_error(tmp_path, make, expected):
    error, _ = run_failing(make(tmp_path))

    assert error.returncode == 2
    assert str(error).startswith("--from: ") and expected in str(error)
    assert not Domain.objects.exists()


def test_the_command_tells_a_new_operator_what_it_does():
    from mail.management.commands.import_dms_files import Command

    assert "--dry-run" in Command.help and "Exit code 0" in Command.help


@pytest.mark.django_db
def test_adopting_a_pending_registration_ends_it_and_drops_the_self_chosen_password(tmp_path):
    # Someone registered dora@ before the operator adopted the DMS account: that password proved nothing.
    person = User.objects.create_user(
        "dora@example.com", "a squatters chosen password", is_active=False, is_pending_registration=True
    )
    hashed = "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash("dora's dms password")

    out = run(write_dir(tmp_path / "old-dms", accounts=f"dora@example.com|{hashed}\n"))

    person.refresh_from_db()
    assert person.mailbox.address == "dora@example.com"
    assert not person.is_pending_registration
    assert not person.check_password("a squatters chosen password")
    assert person.check_password("dora's dms password")
    assert "already had a Dockspace password" not in out
    event = AuditEvent.objects.get(action="mail.mailbox.add")
    assert "adopting the existing person dora@example.com" in event.description
    assert "pending registration was cancelled" in event.description
