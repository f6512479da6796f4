"""The CSV import checks all rows with set-based queries and writes new people in bulk: still all or
nothing, every bad line named, the rule for who acts on whom, one audit entry per mailbox, one DMS sync."""

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import Permission

from accounts.mail_hashes import mail_hash, verify_mail_hash
from accounts.models import AuditEvent, User
from mail import csv_io, services
from mail.csv_io import CsvImportError, mailboxes_import_csv
from mail.dms import sync
from mail.models import Mailbox

ACTOR = "test import"
# One mail hash for every row: a row with password_hash costs no hashing, so thousands of rows stay quick.
OLD_PASSWORD = "an old dms password"


@pytest.fixture(scope="module")
def old_hash():
    return mail_hash(OLD_PASSWORD, "SHA512-CRYPT")


@pytest.fixture
def domain(db):
    return services.domain_create(name="example.com", actor_label="test")


def write(tmp_path, text):
    path = tmp_path / "people.csv"
    path.write_text(text)
    return path


def staff(email, *codenames):
    person = User.objects.create_user(email, "river stone lantern 42", is_staff=True)
    perms = Permission.objects.filter(content_type__app_label="mail")
    if codenames:
        perms = perms | Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames)
    person.user_permissions.set(perms)
    return User.objects.get(pk=person.pk)  # fresh permission cache


@pytest.mark.django_db
def test_a_bad_line_at_row_9000_writes_nothing_and_names_the_line(tmp_path, domain, old_hash):
    rows = [f"user{i}@example.com,{old_hash}" for i in range(1, 9001)]
    rows[8999] = f"user9000@elsewhere.org,{old_hash}"
    path = write(tmp_path, "address,password_hash\n" + "\n".join(rows) + "\n")

    with pytest.raises(CsvImportError) as caught:
        mailboxes_import_csv(path, actor_label=ACTOR)

    assert caught.value.errors == [
        "line 9001: address: elsewhere.org is not a domain Dockspace manages; add it first (manage.py domain add)."
    ]
    assert not Mailbox.objects.exists()
    assert not User.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="mail.mailbox").exists()

    # Positive control: the same file with that line on the managed domain goes in whole.
    rows[8999] = f"user9000@example.com,{old_hash}"
    path = write(tmp_path, "address,password_hash\n" + "\n".join(rows) + "\n")
    assert mailboxes_import_csv(path, actor_label=ACTOR).created == 9000
    assert Mailbox.objects.count() == User.objects.count() == 9000
    assert AuditEvent.objects.filter(action="mail.mailbox.add", actor_label=ACTOR).count() == 9000
    person = User.objects.get(email="user9000@example.com")
    assert person.mailbox.address == "user9000@example.com"
    assert person.mail_password_hash == old_hash
    assert authenticate(email="user9000@example.com", password=OLD_PASSWORD) == person


@pytest.mark.django_db
def test_a_row_for_an_existing_person_the_actor_may_not_manage_is_refused(tmp_path, domain):
    carol = User.objects.create_user("carol@example.com", "carol's own password")
    path = write(tmp_path, "address,name\nnew@example.com,New\ncarol@example.com,Carol\n")

    with pytest.raises(CsvImportError) as caught:
        mailboxes_import_csv(path, actor_label=ACTOR, actor=staff("mail@example.com"))

    assert caught.value.errors == [
        "line 3: address: you may not act on the sign-in of carol@example.com: that needs the permission to "
        "change people."
    ]
    assert not Mailbox.objects.exists()
    assert not User.objects.filter(email="new@example.com").exists()

    # Positive control: staff who may manage people import the same file, adopting carol with her password.
    mailboxes_import_csv(path, actor_label=ACTOR, actor=staff("people@example.com", "change_user"))
    assert sorted(Mailbox.objects.values_list("address", flat=True)) == ["carol@example.com", "new@example.com"]
    assert Mailbox.objects.get(address="carol@example.com").person == carol
    assert authenticate(email="carol@example.com", password="carol's own password") == carol


@pytest.mark.django_db
def test_a_new_mailbox_at_a_superusers_base_address_is_refused_to_mail_staff(tmp_path, domain):
    # DMS delivers admin+ops@ to admin@ when admin+ops@ has no line: the row would take the superuser's mail.
    User.objects.create_superuser("admin+ops@example.com", "root's own password 1")
    path = write(tmp_path, "address\nadmin@example.com\n")

    with pytest.raises(CsvImportError) as caught:
        mailboxes_import_csv(path, actor_label=ACTOR, actor=staff("mail@example.com"))

    assert (
        "line 2: address: admin@example.com would receive mail meant for admin+ops@example.com"
        in caught.value.errors[0]
    )
    assert not Mailbox.objects.exists()
    mailboxes_import_csv(path, actor_label=ACTOR)  # positive control: the host may
    assert Mailbox.objects.get().address == "admin@example.com"


@pytest.mark.django_db
def test_a_row_for_a_superuser_is_refused_to_staff_who_manage_people(tmp_path, domain):
    User.objects.create_superuser("root@example.com", "root's own password 1")
    path = write(tmp_path, "address\nroot@example.com\n")

    with pytest.raises(CsvImportError) as caught:
        mailboxes_import_csv(path, actor_label=ACTOR, actor=staff("people@example.com", "change_user"))

    assert caught.value.errors == [
        "line 2: address: you may not act on the sign-in of root@example.com: only a superuser acts on a superuser."
    ]
    assert not Mailbox.objects.exists()
    mailboxes_import_csv(path, actor_label=ACTOR)  # positive control: the host may
    assert Mailbox.objects.get().person.email == "root@example.com"


@pytest.mark.django_db
def test_a_row_on_a_sign_in_address_written_differently_adopts_that_person_not_a_new_one(tmp_path, domain):
    # 'root@example.com.' normalises to root@example.com: the row is that person's, not a fresh sign-in.
    User.objects.create_user("root@example.com.", "root's own password 1")
    path = write(tmp_path, "address,password\nroot@example.com,a brand new password 7\n")

    with pytest.raises(CsvImportError) as caught:
        mailboxes_import_csv(path, actor_label=ACTOR)

    assert "line 2: password: root@example.com is an existing person's sign-in address" in caught.value.errors[0]
    assert User.objects.count() == 1 and not Mailbox.objects.exists()


@pytest.mark.django_db
def test_a_mailbox_made_while_the_passwords_are_hashed_fails_the_import_and_writes_nothing(
    tmp_path, domain, monkeypatch
):
    real_hash_rows = csv_io._hash_rows

    def hash_while_someone_adds_a_mailbox(*args, **kwargs):
        result = real_hash_rows(*args, **kwargs)
        services.mailbox_create(address="b@example.com", actor_label="admin")  # another operator, meanwhile
        return result

    monkeypatch.setattr(csv_io, "_hash_rows", hash_while_someone_adds_a_mailbox)
    path = write(tmp_path, "address,password\na@example.com,first long passphrase\nb@example.com,\n")

    with pytest.raises(CsvImportError) as caught:
        mailboxes_import_csv(path, actor_label=ACTOR)

    assert caught.value.errors == ["line 3: address: b@example.com is already a mailbox."]
    assert list(Mailbox.objects.values_list("address", flat=True)) == ["b@example.com"]
    assert not User.objects.filter(email="a@example.com").exists()


@pytest.mark.django_db(transaction=True)
def test_new_adopted_and_suspended_rows_are_written_as_the_services_write_them(tmp_path, domain, monkeypatch):
    carol = User.objects.create_user("carol@example.com", "carol's own password")
    path = write(
        tmp_path, "address,name,state\nann@example.com,Ann,\nbob@example.com,,suspended\ncarol@example.com,,\n"
    )
    real_on_commit, after_commit = sync._on_commit, []

    def counting_on_commit():
        after_commit.append(1)
        real_on_commit()

    monkeypatch.setattr(sync, "_on_commit", counting_on_commit)

    mailboxes_import_csv(path, actor_label=ACTOR)

    assert len(after_commit) == 1  # one coalesced DMS sync for the whole import
    assert dict(Mailbox.objects.values_list("address", "state")) == {
        "ann@example.com": "active",
        "bob@example.com": "suspended",
        "carol@example.com": "active",
    }
    ann = User.objects.get(email="ann@example.com")
    assert ann.full_name == "Ann" and ann.email_verified_at is not None and not ann.has_usable_password()
    assert ann.mail_password_hash.startswith("{SHA512-CRYPT}$6$")
    events = AuditEvent.objects.filter(actor_label=ACTOR)
    descriptions = dict(events.filter(action="mail.mailbox.add").values_list("target_label", "description"))
    assert descriptions == {
        "ann@example.com": "Created mailbox, quota 0, new person.",
        "bob@example.com": "Created mailbox, quota 0, new person.",
        "carol@example.com": "Created mailbox, quota 0, adopting the existing person carol@example.com.",
    }
    add = events.get(target_label="ann@example.com")
    assert (add.target_type, add.target_id) == ("mail.Mailbox", str(ann.mailbox.pk))
    assert events.filter(action="mail.mailbox.suspend", target_label="bob@example.com").count() == 1
    assert events.filter(action="mail.mailbox.import").count() == 1
    assert authenticate(email="carol@example.com", password="carol's own password") == carol


@pytest.mark.django_db
def test_many_passwords_are_hashed_in_worker_processes_and_each_one_works(tmp_path, domain, monkeypatch):
    monkeypatch.setattr(csv_io, "PROCESS_POOL_MIN_PASSWORDS", 4)
    assert csv_io._can_fork()
    rows = [(f"user{i}@example.com", f"pass phrase number {i}") for i in range(6)]

    mailboxes_import_csv(
        write(tmp_path, "address,password\n" + "".join(f"{a},{p}\n" for a, p in rows)), actor_label=ACTOR
    )

    for address, password in rows:
        person = User.objects.get(email=address)
        assert verify_mail_hash(password, person.mail_password_hash)
        assert person.password == f"dms${person.mail_password_hash}"
    assert authenticate(email=rows[-1][0], password=rows[-1][1]) == User.objects.get(email=rows[-1][0])
