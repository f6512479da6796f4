"""manage.py mailbox import/export: the CSV importer behind a command, with a clean non-zero exit."""

import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from accounts.models import AuditEvent
from mail import services
from mail.models import Mailbox


@pytest.fixture
def domain(db):
    return services.domain_create(name="example.com", actor_label="test")


def mailbox_command(*args):
    out = io.StringIO()
    call_command("mailbox", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_import_creates_the_mailboxes_and_says_how_many(tmp_path, domain):
    path = tmp_path / "people.csv"
    path.write_text("address,name,quota,password\nann@example.com,Ann,1G,ann's first password\nbob@example.com,,,\n")

    out = mailbox_command("import", "--csv", str(path))

    assert out.strip() == f"Imported 2 mailbox(es) from {path}."
    assert authenticate(email="ann@example.com", password="ann's first password") is not None
    assert AuditEvent.objects.filter(actor_label="manage.py mailbox", action="mail.mailbox.import").count() == 1


@pytest.mark.django_db
def test_a_bad_file_exits_non_zero_listing_every_bad_line_and_imports_nothing(tmp_path, domain):
    path = tmp_path / "people.csv"
    path.write_text("address,quota\nann@example.com,1G\nbob@nowhere.org,1G\ncid@example.com,lots\n")

    with pytest.raises(CommandError) as caught:
        mailbox_command("import", "--csv", str(path))

    lines = str(caught.value).splitlines()
    assert lines[0].startswith("Nothing was imported")
    assert lines[1].startswith("line 3: address: nowhere.org is not a domain Dockspace manages")
    assert lines[2].startswith("line 4: quota: 'lots' is not a quota")
    assert not Mailbox.objects.exists()


@pytest.mark.django_db
def test_a_missing_file_exits_non_zero(tmp_path, domain):
    with pytest.raises(CommandError, match="file: cannot read"):
        mailbox_command("import", "--csv", str(tmp_path / "missing.csv"))


@pytest.mark.django_db
def test_export_writes_the_file_and_import_reads_it_back(tmp_path, domain):
    services.mailbox_create(address="ann@example.com", full_name="Ann", quota=2 * 1024**3, actor_label="t")
    path = tmp_path / "out.csv"

    assert mailbox_command("export", "--csv", str(path)).strip() == f"Wrote 1 mailbox(es) to {path}."
    Mailbox.objects.get().delete()
    mailbox_command("import", "--csv", str(path))

    assert list(Mailbox.objects.values_list("address", "person__full_name", "quota")) == [
        ("ann@example.com", "Ann", 2 * 1024**3)
    ]


@pytest.mark.django_db
def test_export_never_overwrites_an_existing_file_unless_forced(tmp_path, domain):
    services.mailbox_create(address="ann@example.com", full_name="Ann", quota=2 * 1024**3, actor_label="t")
    path = tmp_path / "out.csv"
    path.write_text("someone's own notes\n")

    with pytest.raises(CommandError) as refused:
        mailbox_command("export", "--csv", str(path))

    assert str(refused.value) == f"--csv: {path} already exists; add --force to replace it."
    assert path.read_text() == "someone's own notes\n"

    # Positive control: --force replaces it.
    assert mailbox_command("export", "--csv", str(path), "--force").strip() == f"Wrote 1 mailbox(es) to {path}."
    assert path.read_text().startswith("address,name,quota,state\nann@example.com,Ann,2G,active")


@pytest.fixture
def carol(db):
    from accounts.models import User

    return User.objects.create_user("carol@example.com", "carol's own password")


@pytest.mark.django_db
def test_import_refuses_to_replace_an_existing_persons_password_naming_the_row(tmp_path, domain, carol):
    path = tmp_path / "people.csv"
    path.write_text("address,password\nann@example.com,ann's first password\ncarol@example.com,a new password 5\n")

    with pytest.raises(CommandError) as caught:
        mailbox_command("import", "--csv", str(path))

    assert "line 3: password: carol@example.com is an existing person's sign-in address" in str(caught.value)
    assert "--replace-passwords" in str(caught.value)
    assert not Mailbox.objects.exists()
    assert authenticate(email="carol@example.com", password="carol's own password") == carol


@pytest.mark.django_db
def test_import_replaces_an_existing_persons_password_when_told_to(tmp_path, domain, carol):
    path = tmp_path / "people.csv"
    path.write_text("address,password\ncarol@example.com,a new password 5\n")

    mailbox_command("import", "--csv", str(path), "--replace-passwords")

    assert Mailbox.objects.get().person == carol
    assert authenticate(email="carol@example.com", password="a new password 5") == carol


@pytest.mark.django_db
def test_import_as_mail_only_staff_never_adopts_a_person_they_may_not_manage(tmp_path, domain, carol):
    from django.contrib.auth.models import Permission

    from accounts.models import User

    staff = User.objects.create_user("mailstaff@example.com", "river stone lantern 42", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="mail"))
    path = tmp_path / "people.csv"
    path.write_text("address,password\ncarol@example.com,a new password 5\n")
    fresh = tmp_path / "fresh.csv"
    fresh.write_text("address,password\nnew@example.com,a new password 5\n")

    with pytest.raises(CommandError) as caught:
        mailbox_command("import", "--csv", str(path), "--replace-passwords", "--as", staff.email)
    mailbox_command("import", "--csv", str(fresh), "--as", staff.email)  # positive control

    assert "line 2: address: you may not act on the sign-in of carol@example.com" in str(caught.value)
    assert authenticate(email="carol@example.com", password="carol's own password") == carol
    assert list(Mailbox.objects.values_list("address", flat=True)) == ["new@example.com"]


@pytest.mark.django_db
def test_an_export_imports_back_as_is_with_formula_like_cells_and_an_international_domain(tmp_path):
    call_command("domain", "add", "bücher.de", stdout=io.StringIO())
    mailbox_command("add", "ann@bücher.de", "--name=" + "=SUM(A1:A9)", "--quota", "2G")
    mailbox_command("add", "bob@bücher.de", "--name=-Bob", "--quota", "0")
    mailbox_command("add", "cy@bücher.de", "--name=" + "'=not a formula", "--quota", "1536M")
    mailbox_command("suspend", "bob@bücher.de")
    # argparse would read "-info@..." as an option: this one is made by the service the command calls.
    services.mailbox_create(address="-info@bücher.de", full_name="@Info", actor_label="t")
    path = tmp_path / "mailboxes.csv"
    mailbox_command("export", "--csv", str(path))
    exported = list(Mailbox.objects.order_by("address").values_list("address", "person__full_name", "quota", "state"))
    assert "'=SUM(A1:A9)" in path.read_text()  # still protected in the file a spreadsheet opens
    for address in [row[0] for row in exported]:
        services.mailbox_remove(mailbox=Mailbox.objects.get(address=address), keep_person=False, actor_label="t")

    out = mailbox_command("import", "--csv", str(path))

    assert out.strip() == f"Imported 4 mailbox(es) from {path}."
    imported = list(Mailbox.objects.order_by("address").values_list("address", "person__full_name", "quota", "state"))
    assert imported == exported
    assert ("ann@xn--bcher-kva.de", "=SUM(A1:A9)", 2 * 1024**3, "active") in imported
    assert ("-info@xn--bcher-kva.de", "@Info", 0, "active") in imported
    assert ("cy@xn--bcher-kva.de", "'=not a formula", 1536 * 1024**2, "active") in imported
    assert ("bob@xn--bcher-kva.de", "-Bob", 0, "suspended") in imported


@pytest.mark.django_db
def test_a_hand_written_password_keeps_its_leading_apostrophe(tmp_path, domain):
    path = tmp_path / "people.csv"
    path.write_text("address,password\nann@example.com,'=a long password 42\n")

    mailbox_command("import", "--csv", str(path))

    assert authenticate(email="ann@example.com", password="'=a long password 42") is not None
