"""Addresses in the mail admin and commands: a part before '@' and a managed-domain picker,
international names shown in their own letters, a warning (not a refusal) for '+', and wording
written for the operator."""

import pytest

from mail.models import Alias, Domain, Group, Mailbox
from mail.tests.factories import database_fingerprint, make_domain, make_mailbox, run

pytestmark = pytest.mark.django_db

PLUS = "contains '+', which DMS uses as the recipient delimiter"


def shown_messages(response):
    return [str(m) for m in response.context["messages"]]


def mailbox_form(local, domain, **extra):
    return {"local_part": local, "domain": str(domain.pk), "full_name": "", "quota": "", "password1": "", **extra}


def test_the_add_mailbox_form_offers_only_managed_domains_with_international_names_readable(browser):
    make_domain("example.com")
    make_domain("bücher.de")

    form = browser.get("/admin/mail/mailbox/add/").context["adminform"].form

    assert [label for _, label in form.fields["domain"].choices][1:] == ["example.com", "bücher.de (xn--bcher-kva.de)"]
    assert "address" not in form.fields


def test_a_mailbox_is_made_from_a_local_part_and_a_picked_domain(browser):
    domain = make_domain("bücher.de")

    response = browser.post("/admin/mail/mailbox/add/", mailbox_form("Anna", domain), follow=True)

    assert Mailbox.objects.get().address == "anna@xn--bcher-kva.de"
    assert not [m for m in shown_messages(response) if PLUS in m]


def test_a_domain_that_is_not_managed_cannot_be_picked(browser):
    make_domain("example.com")
    before = database_fingerprint()

    response = browser.post("/admin/mail/mailbox/add/", {**mailbox_form("ann", Domain.objects.get()), "domain": "999"})

    assert "domain" in response.context["adminform"].form.errors
    assert database_fingerprint() == before


def test_the_service_still_checks_the_whole_address_from_the_picker(browser):
    domain = make_domain("example.com")
    before = database_fingerprint()

    response = browser.post("/admin/mail/mailbox/add/", mailbox_form("ann@evil.org", domain))

    assert "is not an email address" in " ".join(response.context["adminform"].form.errors["local_part"])
    assert database_fingerprint() == before


def test_a_plus_in_a_new_mailbox_is_saved_with_a_warning(browser):
    domain = make_domain("example.com")

    response = browser.post("/admin/mail/mailbox/add/", mailbox_form("ann+news", domain), follow=True)

    assert Mailbox.objects.get().address == "ann+news@example.com"
    warnings = [m for m in shown_messages(response) if PLUS in m]
    assert warnings == [
        "ann+news@example.com contains '+', which DMS uses as the recipient delimiter: mail to it may be "
        "delivered to ann@example.com or refused. Prefer '.', '-' or '_' in addresses."
    ]


def test_a_plus_in_a_new_alias_or_list_address_is_saved_with_a_warning(browser):
    domain = make_domain("example.com")
    make_mailbox("ann@example.com")
    alias = {"local_part": "sales+eu", "domain": str(domain.pk), "targets_text": "ann@example.com", "is_active": "on"}

    response = browser.post("/admin/mail/alias/add/", {**alias, "description": ""}, follow=True)
    assert Alias.objects.get().address == "sales+eu@example.com"
    assert any(PLUS in m for m in shown_messages(response))

    group = {"name": "team", "description": "", "list_local_part": "team+all", "list_domain": str(domain.pk)}
    response = browser.post("/admin/mail/group/add/", group, follow=True)
    assert Group.objects.get().list_address == "team+all@example.com"
    assert any(PLUS in m for m in shown_messages(response))

    plain = browser.post("/admin/mail/group/add/", {**group, "name": "ops", "list_local_part": "ops"}, follow=True)
    assert not [m for m in shown_messages(plain) if PLUS in m]


def test_an_empty_local_part_makes_a_catch_all_and_the_change_page_shows_the_address_read_only(browser):
    domain = make_domain("example.com")
    make_mailbox("ann@example.com")
    data = {"local_part": "", "domain": str(domain.pk), "targets_text": "ann@example.com", "is_active": "on"}

    assert browser.post("/admin/mail/alias/add/", {**data, "description": ""}).status_code == 302
    alias = Alias.objects.get()
    assert alias.address == "@example.com"

    page = browser.get(f"/admin/mail/alias/{alias.pk}/change/")
    assert "local_part" not in page.context["adminform"].form.fields
    assert "@example.com" in page.content.decode()
    saved = browser.post(
        f"/admin/mail/alias/{alias.pk}/change/",
        {"targets_text": "ann@example.com\nout@elsewhere.org", "is_active": "on", "description": "x"},
    )
    assert saved.status_code == 302
    alias.refresh_from_db()
    assert (alias.address, alias.target_list) == ("@example.com", ["ann@example.com", "out@elsewhere.org"])


def test_a_group_page_shows_its_list_address_in_the_picker_and_keeps_it(browser):
    domain = make_domain("example.com")
    group = Group.objects.create(name="team")
    from mail import services

    services.group_update(group=group, address="team@example.com", actor_label="test")
    url = f"/admin/mail/group/{group.pk}/change/"
    form = browser.get(url).context["adminform"].form
    assert (form["list_local_part"].value(), form["list_domain"].value()) == ("team", domain.pk)

    saved = browser.post(url, {"name": "team", "description": "", "list_local_part": "team", "list_domain": domain.pk})
    assert saved.status_code == 302
    group.refresh_from_db()
    assert group.list_address == "team@example.com"


def test_the_add_mailbox_form_speaks_to_the_operator_about_the_password(browser):
    make_domain("example.com")

    page = browser.get("/admin/mail/mailbox/add/").content.decode()

    assert "your password also signs you in to mail" not in page
    assert "This one password signs the person in to Dockspace and to mail." in page


def test_idn_domains_are_listed_in_both_forms_in_the_admin(browser):
    make_mailbox("anna@bücher.de")
    make_mailbox("bob@example.com")

    for url in ("/admin/mail/domain/", "/admin/mail/mailbox/"):
        page = browser.get(url).content.decode()
        assert "bücher.de (xn--bcher-kva.de)" in page
        assert "example.com (" not in page


def test_domain_list_shows_the_unicode_form_next_to_the_punycode():
    make_domain("bücher.de")
    make_domain("example.com")

    lines = run("domain", "list").splitlines()

    assert lines[0].startswith("example.com ")
    assert lines[1].startswith("xn--bcher-kva.de (bücher.de) ")


def test_alias_add_keep_copy_says_a_copy_is_kept_and_a_plain_alias_does_not(capsys):
    make_mailbox("ann@example.com")
    out = run("alias", "add", "ann@example.com", "ann@elsewhere.org", "--keep-copy")
    assert out.strip() == "Created ann@example.com -> ann@elsewhere.org, keeping a copy in the mailbox ann@example.com."

    plain = run("alias", "add", "info@example.com", "ann@example.com")
    assert plain.strip() == "Created info@example.com -> ann@example.com."


def test_commands_warn_about_a_plus_on_stderr_and_still_create(capsys):
    import io

    from django.core.management import call_command

    make_domain("example.com")
    err = io.StringIO()
    call_command("mailbox", "add", "ann+x@example.com", stdout=io.StringIO(), stderr=err)
    assert PLUS in err.getvalue()
    assert Mailbox.objects.filter(address="ann+x@example.com").exists()

    err = io.StringIO()
    call_command("alias", "add", "sales+eu@example.com", "ann+x@example.com", stdout=io.StringIO(), stderr=err)
    assert "sales+eu@example.com " + PLUS in err.getvalue()

    err = io.StringIO()
    call_command("group", "add", "team", "--address", "team+all@example.com", stdout=io.StringIO(), stderr=err)
    assert PLUS in err.getvalue()

    err = io.StringIO()
    call_command("mailbox", "add", "bob@example.com", stdout=io.StringIO(), stderr=err)
    assert err.getvalue() == ""


def test_a_csv_import_warns_about_addresses_with_a_plus_and_imports_them(tmp_path):
    import io

    from django.core.management import call_command

    make_domain("example.com")
    path = tmp_path / "people.csv"
    path.write_text("address\nann+x@example.com\nbob@example.com\n")
    err = io.StringIO()

    call_command("mailbox", "import", "--csv", str(path), stdout=io.StringIO(), stderr=err)

    assert err.getvalue().strip() == (
        "Warning: 1 address(es) contain '+', which DMS uses as the recipient delimiter (mail to them may be "
        "delivered to the address without the '+' part, or refused): ann+x@example.com."
    )
    assert Mailbox.objects.count() == 2
    path.write_text("address\ncarol@example.com\n")
    err = io.StringIO()
    call_command("mailbox", "import", "--csv", str(path), stdout=io.StringIO(), stderr=err)
    assert err.getvalue() == ""
