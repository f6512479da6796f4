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
