"""The mail admin, driven through the test client as a superuser: every change goes through the
services, a refused change shows the rule next to its field and writes nothing, and no page 500s."""

import re

import pytest
from django.contrib.auth import authenticate
from django.core import mail
from django.test import Client

from accounts.mail_hashes import verify_mail_hash
from accounts.models import AuditEvent, User
from accounts.tests.factories import PASSWORD, StaffFactory, UserFactory, password_hash
from dockspace.tests.admin_pages import change, errors, page_values, shown_messages
from mail import services
from mail.dkim import dns_record_value
from mail.models import Alias, DkimKey, DmsSyncState, Domain, Group, Mailbox, Tier
from mail.tests.factories import database_fingerprint, make_domain, make_mailbox, make_tier

pytestmark = pytest.mark.django_db

GIB = 1024**3
MIB = 1024**2
NEW_PASSWORD = "a brand new pass phrase 7"


def address_fields(address, local="local_part", domain="domain"):
    """What the admin's address picker posts for an address: the part before '@' and the domain's id."""
    local_part, _, name = address.rpartition("@")
    picked = Domain.objects.filter(name=name.lower()).first()
    return {local: local_part, domain: str(picked.pk) if picked else "999999"}


def act(browser, model, action, objects, **extra):
    """Run a bulk action on the changelist of `model` for these rows, following the redirect."""
    data = {"action": action, "_selected_action": [o.pk for o in objects], **extra}
    return browser.post(f"/admin/mail/{model}/", data, follow=True)


def domain_form(**overrides):
    return {
        "name": "example.com",
        "is_active": "on",
        "tier": "",
        "default_quota": "",
        "dkim_selector": "mail",
        "dkim_algorithm": "rsa",
        "dkim_bits": "2048",
        **overrides,
    }


def with_known_password(person):
    """Give a person the shared factory password without paying for another Argon2 hash."""
    person.password = password_hash()
    person.save(update_fields=["password"])
    return person


# --- domains -------------------------------------------------------------------------------------


def test_adding_a_domain_stores_its_name_in_lower_case_and_is_audited(browser):
    response = browser.post("/admin/mail/domain/add/", domain_form(name="Example.COM", default_quota="5G"))

    assert response.status_code == 302
    domain = Domain.objects.get()
    assert (domain.name, domain.default_quota, domain.dkim_algorithm) == ("example.com", 5 * GIB, "rsa")
    event = AuditEvent.objects.get(action="mail.domain.add")
    assert (event.actor_label, event.target_label) == ("root@example.com", "example.com")


def test_a_domain_added_with_other_dkim_settings_keeps_them(browser):
    data = domain_form(dkim_selector="s1", dkim_algorithm="ed25519")

    assert browser.post("/admin/mail/domain/add/", data).status_code == 302

    assert Domain.objects.values_list("dkim_selector", "dkim_algorithm").get() == ("s1", "ed25519")


def test_the_domain_form_spells_dkim_in_capitals(browser):
    page = browser.get("/admin/mail/domain/add/").content.decode()

    for label in ("DKIM selector:", "DKIM algorithm:", "DKIM key bits:"):
        assert f">{label}</label>" in page
    assert "Dkim" not in page


def test_a_duplicate_domain_differing_only_in_case_is_refused_next_to_the_name(browser):
    make_domain("example.com")
    before = database_fingerprint()

    response = browser.post("/admin/mail/domain/add/", domain_form(name="EXAMPLE.com"))

    assert errors(response) == {"name": ["example.com is already a managed domain."]}
    assert database_fingerprint() == before


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("default_quota", "10 GB", "Write it without spaces, like 10G."),
        ("default_quota", "-1", "A quota cannot be negative"),
        ("default_quota", "10K", "Write a lower-case k: 10k."),
        ("default_quota", "1.5G", "For example 10G or 1536M, not 10GB or 1.5G."),
        ("default_quota", "9" * 5000 + "G", "at most 20 characters"),
        ("name", "exa mple.com", "spaces, line breaks and control characters are not allowed"),
        ("name", "a|b.example.com", "a '|' is not allowed"),
        ("name", "localhost", "is not a valid domain name"),
        ("dkim_selector", "bad selector", "use 1-63 lower-case letters, digits and hyphens"),
        ("dkim_bits", "1000", "an RSA DKIM key has 1024, 2048, 3072, 4096 bits."),
    ],
)
def test_bad_domain_input_shows_the_rule_next_to_its_field_and_writes_nothing(browser, field, value, rule):
    response = browser.post("/admin/mail/domain/add/", domain_form(**{field: value}))

    found = errors(response)
    assert list(found) == [field]
    assert rule in found[field][0]
    assert not Domain.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="mail.").exists()


def test_a_domain_default_quota_above_its_tiers_limit_is_refused_on_the_change_page(browser):
    tier = make_tier(max_quota_per_mailbox=GIB)
    domain = make_domain(tier=tier, default_quota=GIB)
    make_mailbox("ann@example.com", quota=GIB)
    url = f"/admin/mail/domain/{domain.pk}/change/"

    lowered = change(browser, url, tier="", default_quota="2G")
    assert lowered.status_code == 302
    domain.refresh_from_db()
    assert (domain.tier, domain.default_quota) == (None, 2 * GIB)

    small = make_tier(name="small", max_quota_per_mailbox=512 * MIB)
    refused = change(browser, url, tier=str(small.pk))
    assert "max quota per mailbox" in " ".join(m for ms in errors(refused).values() for m in ms)
    domain.refresh_from_db()
    assert domain.tier is None


def test_a_change_refused_by_a_tampered_inline_writes_nothing(browser):
    domain = make_domain("example.com")
    url = f"/admin/mail/domain/{domain.pk}/change/"
    data = {k: v for k, v in page_values(browser.get(url)).items() if not k.startswith("dkim_keys-")}
    before = database_fingerprint()

    response = browser.post(url, {**data, "default_quota": "3G"})

    assert response.status_code == 200
    assert "ManagementForm data is missing" in str(response.context["errors"])
    assert database_fingerprint() == before


# --- tiers ---------------------------------------------------------------------------------------


def test_a_tier_takes_its_quotas_in_dms_syntax_and_is_saved_through_the_service(browser):
    data = {"name": "small", "max_mailboxes": "10", "max_quota_per_mailbox": "1G", "total_quota": "5G"}

    assert browser.post("/admin/mail/tier/add/", data).status_code == 302

    tier = Tier.objects.get()
    assert (tier.max_mailboxes, tier.max_quota_per_mailbox, tier.total_quota) == (10, GIB, 5 * GIB)
    assert AuditEvent.objects.filter(action="mail.tier.add", target_label="small").exists()
    refused = browser.post("/admin/mail/tier/add/", {**data, "name": "other", "total_quota": "5 G"})
    assert "without spaces" in errors(refused)["total_quota"][0]
    assert Tier.objects.count() == 1


# --- mailboxes -----------------------------------------------------------------------------------


def test_adding_a_mailbox_with_a_password_makes_a_person_who_signs_in_to_web_and_mail(browser):
    make_domain("example.com")
    data = {
        **address_fields("Ann@Example.com"),
        "full_name": "Ann Lee",
        "quota": "2G",
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
    }

    response = browser.post("/admin/mail/mailbox/add/", data)

    assert response.status_code == 302
    mailbox = Mailbox.objects.select_related("person").get()
    assert (mailbox.address, mailbox.quota, mailbox.state) == ("ann@example.com", 2 * GIB, "active")
    assert (mailbox.person.email, mailbox.person.full_name) == ("ann@example.com", "Ann Lee")
    assert authenticate(email="ann@example.com", password=NEW_PASSWORD) == mailbox.person
    assert verify_mail_hash(NEW_PASSWORD, mailbox.person.mail_password_hash)
    assert AuditEvent.objects.filter(action="mail.mailbox.add", actor_label="root@example.com").exists()
    assert NEW_PASSWORD not in " ".join(AuditEvent.objects.values_list("description", flat=True))


def test_a_mailbox_without_a_password_gets_its_first_one_through_the_reset_link_action(browser):
    make_domain("example.com", default_quota=GIB)
    response = browser.post("/admin/mail/mailbox/add/", {**address_fields("bob@example.com"), "quota": ""})
    assert response.status_code == 302
    mailbox = Mailbox.objects.get()
    assert mailbox.quota == GIB  # the domain's default
    assert not mailbox.person.has_usable_password()

    page = act(browser, "mailbox", "send_reset_link", [mailbox])

    assert "Sent reset links to 1 person(s)." in shown_messages(page)
    assert [m.to for m in mail.outbox] == [["bob@example.com"]]
    assert AuditEvent.objects.filter(action="password.reset_sent", target_label="bob@example.com").exists()
    link = re.search(r"https://dockspace\.test(/password/reset/\S+/)", mail.outbox[0].body).group(1)
    person_browser = Client()
    form_page = person_browser.get(link, follow=True)
    person_browser.post(form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert authenticate(email="bob@example.com", password=NEW_PASSWORD) == mailbox.person


def test_no_reset_link_goes_to_a_suspended_mailbox_and_the_admin_is_told(browser):
    mailbox = make_mailbox("bob@example.com")
    services.mailbox_set_state(mailbox=mailbox, state=Mailbox.SUSPENDED, actor_label="test")

    page = act(browser, "mailbox", "send_reset_link", [mailbox])

    assert mail.outbox == []
    assert "No link sent to bob@example.com: resume the mailbox first." in shown_messages(page)
    assert not AuditEvent.objects.filter(action="password.reset_sent").exists()


@pytest.mark.parametrize(
    ("data", "field", "rule"),
    [
        ({"address": "ann@unmanaged.org"}, "domain", "Select a valid choice."),
        ({"address": "ann smith@example.com"}, "local_part", "spaces, line breaks and control characters"),
        ({"address": "ann,bob@example.com"}, "local_part", "a ',' is not allowed"),
        ({"address": "ann@bob@example.com"}, "local_part", "is not an email address"),
        ({"address": "taken@example.com"}, "local_part", "taken@example.com is already a mailbox."),
        ({"address": "ann@example.com", "quota": "10 GB"}, "quota", "Write it without spaces"),
        ({"address": "ann@example.com", "password1": "short", "password2": "other"}, "password2", "differ"),
        ({"address": "ann@example.com", "password1": "short", "password2": "short"}, "password1", "too short"),
    ],
)
def test_bad_mailbox_input_shows_the_rule_next_to_its_field_and_writes_nothing(browser, data, field, rule):
    make_mailbox("taken@example.com")
    before = database_fingerprint()
    data = {**address_fields(data.pop("address")), **data}

    response = browser.post("/admin/mail/mailbox/add/", {"quota": "", "password1": "", "password2": "", **data})

    found = errors(response)
    assert list(found) == [field]
    assert rule in " ".join(found[field])
    assert database_fingerprint() == before


def test_a_quota_beyond_the_tier_limit_is_refused_and_nothing_changes(browser):
    make_domain("example.com", tier=make_tier(max_quota_per_mailbox=GIB))
    mailbox = make_mailbox("ann@example.com", quota=512 * MIB, full_name="Ann")
    url = f"/admin/mail/mailbox/{mailbox.pk}/change/"
    before = database_fingerprint()

    response = change(browser, url, quota="2G", full_name="Ann Lee")

    assert errors(response) == {
        "quota": ["tier standard allows at most 1G per mailbox (max quota per mailbox); 2G was given."]
    }
    assert database_fingerprint() == before


def test_changing_a_quota_and_name_within_the_limits_saves_them_and_is_audited(browser):
    make_domain("example.com", tier=make_tier(max_quota_per_mailbox=GIB))
    mailbox = make_mailbox("ann@example.com", quota=512 * MIB, full_name="Ann")

    response = change(browser, f"/admin/mail/mailbox/{mailbox.pk}/change/", quota="1G", full_name="Ann Lee")

    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert (mailbox.quota, mailbox.person.full_name) == (GIB, "Ann Lee")
    event = AuditEvent.objects.get(action="mail.mailbox.change")
    assert event.description == "Changed quota 1G, name."


def test_a_new_password_set_on_the_change_page_is_checked_against_the_rules(browser):
    mailbox = make_mailbox("ann@example.com")

    response = change(browser, f"/admin/mail/mailbox/{mailbox.pk}/change/", new_password="short")

    assert "too short" in " ".join(errors(response)["new_password"])
    mailbox.person.refresh_from_db()
    assert not mailbox.person.has_usable_password()


def test_a_new_password_set_on_the_change_page_works_for_web_and_mail_and_ends_sessions(browser):
    mailbox = make_mailbox("ann@example.com")
    ann_browser = Client()
    ann_browser.force_login(mailbox.person)

    assert 'name="new_password"' in browser.get(f"/admin/mail/mailbox/{mailbox.pk}/change/").content.decode()
    response = change(browser, f"/admin/mail/mailbox/{mailbox.pk}/change/", new_password=NEW_PASSWORD)

    assert response.status_code == 302
    mailbox.person.refresh_from_db()
    assert authenticate(email="ann@example.com", password=NEW_PASSWORD) == mailbox.person
    assert verify_mail_hash(NEW_PASSWORD, mailbox.person.mail_password_hash)
    assert ann_browser.get("/profile/").status_code == 302
    assert AuditEvent.objects.get(action="mail.mailbox.change").description == "Changed password."


def test_suspend_resume_and_disable_change_the_state_end_sessions_and_are_audited(browser):
    ann, bob = make_mailbox("ann@example.com"), make_mailbox("bob@example.com")
    with_known_password(ann.person)
    ann_browser = Client()
    ann_browser.force_login(ann.person)
    assert ann_browser.get("/profile/").status_code == 200

    page = act(browser, "mailbox", "suspend", [ann, bob])

    assert "2 mailbox(es) suspended." in shown_messages(page)
    assert set(Mailbox.objects.values_list("state", flat=True)) == {"suspended"}
    assert AuditEvent.objects.filter(action="mail.mailbox.suspend", actor_label="root@example.com").count() == 2
    assert authenticate(email="ann@example.com", password=PASSWORD) is None
    assert ann_browser.get("/profile/").status_code == 302

    act(browser, "mailbox", "resume", [ann])
    assert authenticate(email="ann@example.com", password=PASSWORD) == ann.person
    assert AuditEvent.objects.filter(action="mail.mailbox.resume", target_label="ann@example.com").exists()

    page = act(browser, "mailbox", "disable", [ann, bob])
    assert "2 mailbox(es) disabled; their stored mail is kept." in shown_messages(page)
    assert set(Mailbox.objects.values_list("state", flat=True)) == {"disabled"}
    assert AuditEvent.objects.filter(action="mail.mailbox.disable").count() == 2


def shown_levels(response):
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def mail_only_staff():
    """Staff holding the mail app's permissions but not the one to manage people's sign-in: (person, browser)."""
    from django.contrib.auth.models import Permission

    staff = UserFactory(email="mail-staff@example.com", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="mail"))
    browser = Client()
    browser.force_login(staff)
    return staff, browser


@pytest.mark.parametrize("action", ["suspend", "resume", "disable"])
def test_a_refused_state_change_shows_only_the_refusal_and_no_green_zero(action):
    ann = make_mailbox("ann@example.com")
    _staff, browser = mail_only_staff()

    page = act(browser, "mailbox", action, [ann])

    assert shown_levels(page) == [("error", "Skipped, you may not manage their sign-in: ann@example.com")]
    assert Mailbox.objects.get().state == "active"


def test_a_state_change_with_nothing_to_change_is_a_neutral_message(browser):
    ann = make_mailbox("ann@example.com")

    page = act(browser, "mailbox", "resume", [ann])

    assert shown_levels(page) == [("info", "Nothing changed: the selected mailbox(es) were already active.")]


def test_a_partly_refused_state_change_reports_both_parts():
    ann = make_mailbox("ann@example.com")
    staff, browser = mail_only_staff()
    own = services.mailbox_create(address=staff.email, person=staff, actor_label="t")

    page = act(browser, "mailbox", "suspend", [ann, own])

    assert shown_levels(page) == [
        ("error", "Skipped, you may not manage their sign-in: ann@example.com"),
        ("success", "1 mailbox(es) suspended."),
    ]
    assert dict(Mailbox.objects.values_list("address", "state")) == {
        "ann@example.com": "active",
        "mail-staff@example.com": "suspended",
    }


def test_removing_a_mailbox_keeps_the_person(browser):
    mailbox = make_mailbox("ann@example.com")

    response = browser.post(f"/admin/mail/mailbox/{mailbox.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Mailbox.objects.exists()
    assert User.objects.filter(email="ann@example.com").exists()
    assert AuditEvent.objects.filter(action="mail.mailbox.remove", target_label="ann@example.com").exists()


# --- aliases -------------------------------------------------------------------------------------


def alias_form(address, targets, **extra):
    return {**address_fields(address), "targets_text": targets, "is_active": "on", "description": "", **extra}


def test_an_alias_takes_its_targets_one_per_line_in_order(browser):
    make_mailbox("ann@example.com")

    response = browser.post(
        "/admin/mail/alias/add/", alias_form("Info@Example.com", "Outside@Elsewhere.org\r\nann@example.com\r\n\r\n")
    )

    assert response.status_code == 302
    alias = Alias.objects.get()
    assert (alias.address, alias.target_list, alias.keep_copy) == (
        "info@example.com",
        ["outside@elsewhere.org", "ann@example.com"],
        False,
    )
    assert AuditEvent.objects.filter(action="mail.alias.add", target_label="info@example.com").exists()


def test_changing_an_alias_replaces_its_targets_and_cannot_change_its_address(browser):
    make_mailbox("ann@example.com")
    make_mailbox("bob@example.com")
    alias = services.alias_create(address="info@example.com", targets=["ann@example.com"], actor_label="test")

    url = f"/admin/mail/alias/{alias.pk}/change/"
    response = change(browser, url, address="other@example.com", targets_text="bob@example.com")

    assert response.status_code == 302
    alias.refresh_from_db()
    assert (alias.address, alias.target_list) == ("info@example.com", ["bob@example.com"])


def test_a_catch_all_is_an_alias_without_a_name(browser):
    make_mailbox("ann@example.com")

    assert browser.post("/admin/mail/alias/add/", alias_form("@Example.com", "ann@example.com")).status_code == 302

    alias = Alias.objects.get()
    assert (alias.address, alias.is_catch_all) == ("@example.com", True)


def test_keep_a_copy_forwards_a_mailbox_and_is_needed_to_forward_one(browser):
    make_mailbox("ann@example.com")

    refused = browser.post("/admin/mail/alias/add/", alias_form("ann@example.com", "ann@elsewhere.org"))
    assert errors(refused) == {
        "local_part": ["ann@example.com is already a mailbox (to forward and keep a copy, tick 'keep a copy')."]
    }
    assert not Alias.objects.exists()

    kept = browser.post("/admin/mail/alias/add/", alias_form("ann@example.com", "ann@elsewhere.org", keep_copy="on"))
    assert kept.status_code == 302
    assert Alias.objects.values_list("address", "keep_copy").get() == ("ann@example.com", True)


def test_keep_a_copy_without_a_mailbox_is_refused_next_to_the_box(browser):
    make_domain("example.com")

    response = browser.post("/admin/mail/alias/add/", alias_form("info@example.com", "x@elsewhere.org", keep_copy="on"))

    assert errors(response) == {"keep_copy": ["keep a copy needs a mailbox at info@example.com; there is none."]}


def test_a_forwarding_loop_is_refused_next_to_the_targets(browser):
    make_domain("example.com")
    services.alias_create(address="a@example.com", targets=["outside@elsewhere.org"], actor_label="test")
    services.alias_create(address="b@example.com", targets=["a@example.com"], actor_label="test")
    first = Alias.objects.get(address="a@example.com")
    before = database_fingerprint()

    response = change(browser, f"/admin/mail/alias/{first.pk}/change/", targets_text="b@example.com")

    assert errors(response) == {
        "targets_text": ["this would make a forwarding loop: a@example.com -> b@example.com -> a@example.com."]
    }
    assert database_fingerprint() == before


@pytest.mark.parametrize(
    ("address", "targets", "field", "rule"),
    [
        ("info@unmanaged.org", "ann@example.com", "domain", "Select a valid choice."),
        ("in fo@example.com", "ann@example.com", "local_part", "spaces, line breaks and control characters"),
        ("info:x@example.com", "ann@example.com", "local_part", "a ':' is not allowed"),
        ("info@example.com", "not-an-address", "targets_text", "is not an email address"),
        (
            "info@example.com",
            "bob@elsewhere.org\nann @example.com",
            "targets_text",
            "'ann @example.com': spaces, line breaks and control characters are not allowed.",
        ),
        ("info@example.com", "x|y@elsewhere.org", "targets_text", "a '|' is not allowed"),
        ("info@example.com", "@elsewhere.org", "targets_text", "a target must be a full address"),
        ("info@example.com", "nobody@example.com", "targets_text", "is not a mailbox, alias or list; create it first"),
        ("info@example.com", "info@example.com", "targets_text", "cannot forward to itself"),
        ("info@example.com", "", "targets_text", "This field is required."),
    ],
)
def test_bad_alias_input_shows_the_rule_next_to_its_field_and_writes_nothing(browser, address, targets, field, rule):
    make_mailbox("ann@example.com")
    before = database_fingerprint()

    response = browser.post("/admin/mail/alias/add/", alias_form(address, targets))

    found = errors(response)
    assert list(found) == [field]
    assert rule in " ".join(found[field])
    assert database_fingerprint() == before


def test_an_alias_past_the_tiers_limit_names_the_limit(browser):
    make_domain("example.com", tier=make_tier(max_aliases=1))
    services.alias_create(address="a@example.com", targets=["x@elsewhere.org"], actor_label="test")

    response = browser.post("/admin/mail/alias/add/", alias_form("b@example.com", "x@elsewhere.org"))

    assert errors(response) == {"local_part": ["tier standard allows at most 1 aliases on example.com (max aliases)."]}


# --- groups --------------------------------------------------------------------------------------


def test_a_group_with_members_and_a_list_address_becomes_a_list(browser):
    ann, bob = make_mailbox("ann@example.com"), make_mailbox("bob@example.com")
    carol = UserFactory(email="carol@elsewhere.org")  # a person without a mailbox can be a member too
    list_address = address_fields("Team@Example.com", "list_local_part", "list_domain")
    data = {"name": "team", "description": "", **list_address, "members": [ann.person.pk, carol.pk]}

    assert browser.post("/admin/mail/group/add/", data).status_code == 302

    group = Group.objects.get()
    assert group.list_address == "team@example.com"
    assert set(group.members.values_list("email", flat=True)) == {"ann@example.com", "carol@elsewhere.org"}
    assert AuditEvent.objects.filter(action="mail.group.add", target_label="team").exists()

    url = f"/admin/mail/group/{group.pk}/change/"
    assert change(browser, url, members=[bob.person.pk], list_local_part="", list_domain="").status_code == 302
    group.refresh_from_db()
    assert group.list_address is None
    assert list(group.members.values_list("email", flat=True)) == ["bob@example.com"]


@pytest.mark.parametrize(
    ("data", "field", "rule"),
    [
        ({"address": "ann@example.com"}, "list_local_part", "ann@example.com is already a mailbox."),
        ({"address": "team@unmanaged.org"}, "list_domain", "Select a valid choice."),
        ({"address": "te am@example.com"}, "list_local_part", "spaces, line breaks and control characters"),
        ({"address": "@example.com"}, "list_local_part", "give the part before '@'"),
        ({"name": "STAFF"}, "name", "a group named 'STAFF' already exists."),
    ],
)
def test_bad_group_input_shows_the_rule_next_to_its_field_and_writes_nothing(browser, data, field, rule):
    make_mailbox("ann@example.com")
    services.group_create(name="staff", actor_label="test")
    before = database_fingerprint()
    if "address" in data:
        data = {**address_fields(data.pop("address"), "list_local_part", "list_domain"), **data}

    response = browser.post("/admin/mail/group/add/", {"name": "team", "description": "", **data})

    found = errors(response)
    assert list(found) == [field]
    assert rule in " ".join(found[field])
    assert database_fingerprint() == before


def test_any_person_can_be_made_a_member_of_a_group(browser):
    person = UserFactory(email="ann@exämple.com")

    response = browser.post("/admin/mail/group/add/", {"name": "team", "description": "", "members": [person.pk]})

    assert response.status_code == 302
    assert list(Group.objects.get().members.all()) == [person]


# --- DKIM ----------------------------------------------------------------------------------------


def test_generate_and_rotate_show_the_dns_records_and_never_the_private_key(browser):
    domain = make_domain("example.com")
    services.domain_update(domain=domain, dkim_algorithm="ed25519", actor_label="test")

    page = act(browser, "domain", "generate_dkim", [domain])

    first = DkimKey.objects.get()
    assert (first.selector, first.state, first.algorithm) == ("mail", "active", "ed25519")
    assert any(m.startswith("Generated DKIM keys for example.com.") for m in shown_messages(page))
    assert AuditEvent.objects.filter(action="mail.dkim.generate", target_label="example.com").exists()

    act(browser, "domain", "rotate_dkim", [domain])

    second = DkimKey.objects.get(state="active")
    first.refresh_from_db()
    assert first.state == "published" and second.selector != "mail"
    domain_page = browser.get(f"/admin/mail/domain/{domain.pk}/change/").content.decode()
    for key in (first, second):
        assert f"<code>{key.selector}._domainkey.example.com</code>" in domain_page
        assert dns_record_value(key.algorithm, key.public_key_b64) in domain_page
    key_page = browser.get(f"/admin/mail/dkimkey/{second.pk}/change/").content.decode()
    assert dns_record_value(second.algorithm, second.public_key_b64) in key_page
    assert "256 (Ed25519)" in key_page and "256 (Ed25519)" in domain_page  # not "0 bits"
    for page_text in (domain_page, key_page, browser.get("/admin/mail/dkimkey/").content.decode()):
        assert "PRIVATE KEY" not in page_text
        for key in (first, second):
            assert key.private_key_pem.splitlines()[1] not in page_text


def test_a_default_domain_gets_an_rsa_2048_key_with_a_dns_record_in_one_string(browser):
    domain = make_domain("example.com")

    act(browser, "domain", "generate_dkim", [domain])

    key = DkimKey.objects.get()
    assert (key.algorithm, key.bits, key.selector) == ("rsa", 2048, "mail")
    page = browser.get(f"/admin/mail/domain/{domain.pk}/change/").content.decode()
    assert f"v=DKIM1; k=rsa; p={key.public_key_b64}" in page


def test_generating_a_second_key_says_to_rotate_instead(browser):
    domain = make_domain("example.com")
    services.domain_update(domain=domain, dkim_algorithm="ed25519", actor_label="test")
    services.dkim_generate(domain=domain, actor_label="test")

    page = act(browser, "domain", "generate_dkim", [domain])

    assert "example.com: example.com already has an active DKIM key; rotate it instead." in shown_messages(page)
    assert DkimKey.objects.count() == 1


def test_retiring_a_published_key_works_and_the_active_key_cannot_be_retired_or_deleted(browser):
    domain = make_domain("example.com")
    services.domain_update(domain=domain, dkim_algorithm="ed25519", actor_label="test")
    old = services.dkim_generate(domain=domain, actor_label="test")
    new = services.dkim_rotate(domain=domain, actor_label="test")

    # Tests' DNS answers REFUSED, so the plain action is held back (deliverability's tests): retire anyway.
    page = act(browser, "dkimkey", "retire_anyway", [old, new])

    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.state, new.state) == ("retired", "active")
    assert any("the active key cannot be retired; rotate first." in m for m in shown_messages(page))
    assert browser.get(f"/admin/mail/dkimkey/{new.pk}/delete/").status_code == 403
    assert DkimKey.objects.count() == 2


# --- DMS sync state ------------------------------------------------------------------------------


def test_the_sync_state_page_warns_while_no_mailbox_exists(browser):
    page = browser.get("/admin/mail/dmssyncstate/", follow=True)
    assert any(m.startswith("No mailbox exists: DMS stops itself") for m in shown_messages(page))

    make_mailbox("ann@example.com")
    page = browser.get("/admin/mail/dmssyncstate/", follow=True)
    assert not any(m.startswith("No mailbox exists") for m in shown_messages(page))


def test_write_now_writes_the_dms_files_into_the_dms_directory(browser, dms_dir):
    make_mailbox("ann@example.com", quota=GIB)
    state = DmsSyncState.load()

    page = act(browser, "dmssyncstate", "write_now", [state])

    assert any(m.endswith("file(s) written, 0 unchanged.") for m in shown_messages(page))
    accounts = (dms_dir / "postfix-accounts.cf").read_text()
    assert "ann@example.com|{SHA512-CRYPT}" in accounts
    assert "ann@example.com:1G" in (dms_dir / "dovecot-quotas.cf").read_text()
    state.refresh_from_db()
    assert state.last_success_at is not None and "postfix-accounts.cf" in state.checksums
    assert AuditEvent.objects.filter(action="mail.dms.sync", actor_label="root@example.com").exists()
    change_page = browser.get(f"/admin/mail/dmssyncstate/{state.pk}/change/").content.decode()
    assert state.checksums["postfix-accounts.cf"][:16] in change_page


def test_a_dms_directory_that_cannot_be_written_is_reported_not_a_server_error(browser, settings, tmp_path):
    make_mailbox("ann@example.com")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the DMS directory should be")
    settings.DMS_DIR = blocker / "dms"
    state = DmsSyncState.load()

    page = act(browser, "dmssyncstate", "write_now", [state])

    assert page.status_code == 200
    assert any(m.startswith("Could not write the DMS files:") for m in shown_messages(page))
    state.refresh_from_db()
    assert state.last_error and state.last_success_at is None


# --- deleting ------------------------------------------------------------------------------------


def test_a_domain_that_still_has_mailboxes_is_not_deleted_and_the_page_says_why(browser):
    make_mailbox("ann@example.com")
    domain = Domain.objects.get()
    url = f"/admin/mail/domain/{domain.pk}/delete/"

    confirm = browser.get(url)
    posted = browser.post(url, {"post": "yes"})
    bulk = browser.post(
        "/admin/mail/domain/", {"action": "delete_selected", "_selected_action": [domain.pk], "post": "yes"}
    )

    for response in (confirm, posted, bulk):
        assert response.status_code == 200
        assert "ann@example.com" in response.content.decode()
        assert "protected" in response.content.decode()
    assert Domain.objects.filter(pk=domain.pk).exists()
    assert not AuditEvent.objects.filter(action__in=["mail.domain.remove", "admin.delete"]).exists()


def test_an_empty_domain_is_deleted_through_the_service(browser):
    domain = make_domain("example.com")

    assert browser.post(f"/admin/mail/domain/{domain.pk}/delete/", {"post": "yes"}).status_code == 302

    assert not Domain.objects.exists()
    assert AuditEvent.objects.filter(action="mail.domain.remove", target_label="example.com").exists()


def test_a_removal_the_service_refuses_is_a_message_and_undoes_the_whole_batch(browser, monkeypatch):
    first, second = make_domain("one.example"), make_domain("two.example")
    real_remove = services.domain_remove

    def refuse_the_second(*, domain, request=None):
        if domain.name == "two.example":
            raise services.ValidationError({"name": ["name: two.example is busy."]})
        real_remove(domain=domain, request=request)

    monkeypatch.setattr(services, "domain_remove", refuse_the_second)

    single = browser.post(f"/admin/mail/domain/{second.pk}/delete/", {"post": "yes"}, follow=True)
    assert single.redirect_chain[-1][0] == f"/admin/mail/domain/{second.pk}/change/"
    assert "Not deleted: name: two.example is busy." in shown_messages(single)

    data = {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"}
    bulk = browser.post("/admin/mail/domain/", data, follow=True)
    assert "Nothing was changed: name: two.example is busy." in shown_messages(bulk)
    assert Domain.objects.count() == 2
    assert not AuditEvent.objects.filter(action__in=["mail.domain.remove", "admin.delete"]).exists()


# --- every page ----------------------------------------------------------------------------------


@pytest.fixture
def mail_rows():
    tier = make_tier(max_mailboxes=10)
    domain = make_domain("example.com", tier=tier)
    make_domain("other.org", is_active=False)
    ann = make_mailbox("ann@example.com", full_name="Ann Lee")
    bob = make_mailbox("bob@example.com", full_name="Bob Stone")
    services.mailbox_set_state(mailbox=bob, state=Mailbox.SUSPENDED, actor_label="test")
    alias = services.alias_create(address="info@example.com", targets=["ann@example.com"], actor_label="test")
    services.alias_create(address="@example.com", targets=["bob@example.com"], actor_label="test")
    services.alias_create(address="ann@example.com", targets=["ann@elsewhere.org"], keep_copy=True, actor_label="test")
    group = services.group_create(
        name="team", address="team@example.com", members=["ann@example.com", "bob@example.com"], actor_label="test"
    )
    services.group_create(name="readers", members=["bob@example.com"], actor_label="test")
    services.domain_update(domain=domain, dkim_algorithm="ed25519", actor_label="test")
    services.dkim_generate(domain=domain, actor_label="test")
    key = services.dkim_rotate(domain=domain, actor_label="test")
    return {
        "tier": tier,
        "domain": domain,
        "mailbox": ann,
        "alias": alias,
        "group": group,
        "dkimkey": key,
        "dmssyncstate": DmsSyncState.load(),
    }


MODELS = ["tier", "domain", "mailbox", "alias", "group", "dkimkey", "dmssyncstate"]


def test_the_admin_index_and_the_mail_app_page_list_every_mail_model(browser, mail_rows):
    for url in ("/admin/", "/admin/mail/"):
        page = browser.get(url).content.decode()
        for model in MODELS:
            assert f'href="/admin/mail/{model}/"' in page, (url, model)


@pytest.mark.parametrize("model", MODELS)
def test_every_page_of_every_mail_model_renders(browser, mail_rows, model):
    pk = mail_rows[model].pk
    urls = [f"/admin/mail/{model}/", f"/admin/mail/{model}/{pk}/change/", f"/admin/mail/{model}/{pk}/history/"]
    if model not in ("dkimkey", "dmssyncstate"):
        urls += [f"/admin/mail/{model}/add/", f"/admin/mail/{model}/{pk}/delete/"]

    for url in urls:
        assert browser.get(url).status_code == 200, url


@pytest.mark.parametrize(
    ("model", "query", "rows"),
    [
        ("mailbox", "q=Stone", {"bob@example.com"}),
        ("mailbox", "q=ANN@example", {"ann@example.com"}),
        ("mailbox", "state__exact=suspended", {"bob@example.com"}),
        ("mailbox", "state__exact=active", {"ann@example.com"}),
        ("domain", "q=other", {"other.org"}),
        ("domain", "is_active__exact=0", {"other.org"}),
        ("alias", "q=elsewhere", {"ann@example.com"}),
        ("alias", "q=ann@example.com", {"ann@example.com", "info@example.com"}),
        ("alias", "keep_copy__exact=0", {"info@example.com", "@example.com"}),
        ("group", "q=ann@example.com", {"team"}),
        ("group", "q=team@", {"team"}),
        ("dkimkey", "state__exact=published", {"mail._domainkey.example.com"}),
        ("tier", "q=stand", {"standard"}),
    ],
)
def test_changelists_search_and_filter(browser, mail_rows, model, query, rows):
    response = browser.get(f"/admin/mail/{model}/?{query}")

    assert response.status_code == 200
    assert {str(row) for row in response.context["cl"].result_list} == rows


def test_the_mailbox_change_page_lists_what_reaches_the_mailbox(browser, mail_rows):
    page = browser.get(f"/admin/mail/mailbox/{mail_rows['mailbox'].pk}/change/").content.decode()

    assert "info@example.com, team@example.com" in page


@pytest.fixture
def mail_clerk():
    """Staff who may manage mailboxes but not people."""
    from django.contrib.auth.models import Permission

    from accounts.tests.factories import UserFactory

    clerk = UserFactory(email="clerk@example.com", is_staff=True)
    clerk.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="mail", codename__in=["view_mailbox", "change_mailbox", "add_mailbox"]
        )
    )
    client = Client()
    client.force_login(clerk)
    return client


def test_staff_without_the_right_to_change_people_cannot_take_over_a_sign_in(mail_clerk):
    from django.contrib.auth import authenticate

    make_domain("example.com")
    root = StaffFactory(email="boss@example.com")
    ann = make_mailbox("ann@example.com")
    url = f"/admin/mail/mailbox/{ann.pk}/change/"
    assert 'name="new_password"' not in mail_clerk.get(url).content.decode()  # not offered...
    refused = change(mail_clerk, url, new_password="a takeover password 1")  # ...and refused when posted
    assert refused.status_code == 200
    assert "you may not act on the sign-in of ann@example.com" in " ".join(errors(refused)["new_password"])
    assert authenticate(email="ann@example.com", password="a takeover password 1") is None
    # Nor by giving an existing person (here the superuser) a mailbox with a password of their choosing.
    refused = mail_clerk.post(
        "/admin/mail/mailbox/add/",
        {
            **address_fields("boss@example.com"),
            "quota": "",
            "password1": "a takeover password 1",
            "password2": "a takeover password 1",
        },
    )
    assert "sign-in address of the existing person boss@example.com" in " ".join(errors(refused)["local_part"])
    assert not Mailbox.objects.filter(person=root).exists()
    assert authenticate(email="boss@example.com", password="a takeover password 1") is None


ADD_MAILBOX_TAKEOVER = {"quota": "", "password1": "a takeover password 1", "password2": "a takeover password 1"}


@pytest.mark.parametrize("spelling", ["boss", "BOSS", "Boss"])
def test_mail_only_staff_cannot_adopt_a_person_by_any_spelling_of_their_address(mail_clerk, spelling):
    # The picker gives the domain by id; other spellings of the domain are refused by the service (commands).
    domain = make_domain("example.com")
    root = StaffFactory(email="boss@example.com")
    before = root.password

    refused = mail_clerk.post(
        "/admin/mail/mailbox/add/", {"local_part": spelling, "domain": str(domain.pk), **ADD_MAILBOX_TAKEOVER}
    )

    assert "sign-in address of the existing person boss@example.com" in " ".join(errors(refused)["local_part"])
    assert not Mailbox.objects.exists()
    root.refresh_from_db()
    assert root.password == before
    assert authenticate(email="boss@example.com", password="a takeover password 1") is None


def test_mail_only_staff_naming_the_person_is_refused_too(mail_clerk):
    make_domain("example.com")
    StaffFactory(email="boss@example.com")
    UserFactory(email="ann@example.com")

    for who in ("boss@example.com", "ann@example.com"):
        local = who.split("@")[0]
        refused = mail_clerk.post(
            "/admin/mail/mailbox/add/", {**address_fields(who), "person": who, **ADD_MAILBOX_TAKEOVER}
        )
        assert f"you may not act on the sign-in of {local}@example.com" in " ".join(errors(refused)["person"])
    assert not Mailbox.objects.exists()


def test_mail_only_staff_still_create_mailboxes_for_new_people(mail_clerk):
    make_domain("example.com")

    response = mail_clerk.post(
        "/admin/mail/mailbox/add/", {**address_fields("new@example.com"), **ADD_MAILBOX_TAKEOVER}
    )

    assert response.status_code == 302
    assert authenticate(email="new@example.com", password="a takeover password 1") is not None
    assert AuditEvent.objects.get(action="mail.mailbox.add").description.endswith("new person.")


def test_a_superuser_adopts_an_existing_person_by_naming_them_and_the_audit_says_so(browser):
    make_domain("example.com")
    ann = UserFactory(email="ann@example.com")

    response = browser.post(
        "/admin/mail/mailbox/add/", {**address_fields("ann@example.com"), "person": "ann@example.com", "quota": ""}
    )

    assert response.status_code == 302
    assert Mailbox.objects.get().person == ann
    event = AuditEvent.objects.get(action="mail.mailbox.add")
    assert "adopting the existing person ann@example.com" in event.description
    assert event.actor_label == "root@example.com"


def test_the_add_form_says_a_password_for_an_existing_person_replaces_theirs(browser):
    page = browser.get("/admin/mail/mailbox/add/").content.decode()

    assert "A password given for an existing person replaces their password" in page
    assert "signs them out elsewhere; leave the password empty to keep theirs." in page


def test_adopting_a_person_with_a_password_replaces_it_signs_them_out_audits_and_says_so(browser):
    make_domain("example.com")
    ann = UserFactory(email="ann@example.com")
    ann_browser = Client()
    ann_browser.force_login(ann)
    assert ann_browser.get("/profile/").status_code == 200

    response = browser.post(
        "/admin/mail/mailbox/add/",
        {
            **address_fields("ann@example.com"),
            "person": "ann@example.com",
            "quota": "",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
        follow=True,
    )

    assert response.status_code == 200
    assert (
        "The password of ann@example.com was replaced (Dockspace and mail) by the one given here; their sessions "
        "were signed out." in shown_messages(response)
    )
    assert authenticate(email="ann@example.com", password=NEW_PASSWORD) == ann
    assert authenticate(email="ann@example.com", password=PASSWORD) is None
    assert ann_browser.get("/profile/").status_code == 302  # signed out
    replaced = AuditEvent.objects.get(action="password.set", target_label="ann@example.com")
    assert replaced.description.startswith("Password replaced for web and mail")
    assert replaced.actor_label == "root@example.com"


def test_adopting_a_person_without_a_password_keeps_their_password_and_sessions(browser):
    make_domain("example.com")
    ann = UserFactory(email="ann@example.com")
    ann_browser = Client()
    ann_browser.force_login(ann)

    response = browser.post(
        "/admin/mail/mailbox/add/",
        {**address_fields("ann@example.com"), "person": "ann@example.com", "quota": ""},
        follow=True,
    )

    assert response.status_code == 200
    assert authenticate(email="ann@example.com", password=PASSWORD) == ann
    assert ann_browser.get("/profile/").status_code == 200
    assert not AuditEvent.objects.filter(action="password.set").exists()
    assert not [m for m in shown_messages(response) if "replaced" in m]


def test_an_operator_adopting_themselves_with_a_new_password_stays_signed_in_here_only(browser):
    make_domain("example.com")
    root = User.objects.get(email="root@example.com")
    elsewhere = Client()
    elsewhere.force_login(root)

    response = browser.post(
        "/admin/mail/mailbox/add/",
        {
            **address_fields("root@example.com"),
            "person": "root@example.com",
            "quota": "",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
        follow=True,
    )

    assert response.status_code == 200
    assert Mailbox.objects.get().person == root
    assert (
        "Your password was replaced (Dockspace and mail) by the one given here; your other sessions were signed "
        "out, this one stays." in shown_messages(response)
    )
    assert browser.get("/admin/mail/mailbox/").status_code == 200  # this session goes on
    assert elsewhere.get("/admin/mail/mailbox/").status_code == 302  # the other one was signed out
    assert authenticate(email="root@example.com", password=NEW_PASSWORD) == root
    assert AuditEvent.objects.filter(action="password.set", target_label="root@example.com").count() == 1


def test_a_mailbox_cannot_be_given_to_one_person_at_another_persons_sign_in_address(browser):
    make_domain("example.com")
    UserFactory(email="ann@example.com")
    UserFactory(email="bob@example.com")

    refused = browser.post(
        "/admin/mail/mailbox/add/", {**address_fields("ann@example.com"), "person": "bob@example.com", "quota": ""}
    )

    assert "sign-in address of another person, ann@example.com" in " ".join(errors(refused)["local_part"])
    assert not Mailbox.objects.exists()


@pytest.fixture
def mail_staff():
    """Staff with every permission of the mail app and none over people."""
    from django.contrib.auth.models import Permission

    staff = UserFactory(email="mailstaff@example.com", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="mail"))
    client = Client()
    client.force_login(staff)
    return client


def test_mail_only_staff_cannot_put_an_alias_on_a_superusers_sign_in_address(mail_staff):
    make_domain("example.com")
    StaffFactory(email="boss@example.com")

    refused = mail_staff.post("/admin/mail/alias/add/", alias_form("boss@example.com", "thief@elsewhere.test"))

    assert "would receive mail meant for boss@example.com" in " ".join(errors(refused)["local_part"])
    assert not Alias.objects.exists()


def test_mail_only_staff_still_add_aliases_nobody_signs_in_with(mail_staff):
    make_domain("example.com")
    StaffFactory(email="boss@example.com")

    response = mail_staff.post("/admin/mail/alias/add/", alias_form("info@example.com", "helpdesk@elsewhere.test"))

    assert response.status_code == 302
    assert Alias.objects.get().target_list == ["helpdesk@elsewhere.test"]


def test_a_superuser_may_forward_a_persons_sign_in_address(browser):
    make_domain("example.com")
    UserFactory(email="ann@example.com")

    response = browser.post("/admin/mail/alias/add/", alias_form("ann@example.com", "ann@elsewhere.test"))

    assert response.status_code == 302


def test_mail_only_staff_cannot_add_a_catch_all_covering_a_persons_sign_in_address(mail_staff):
    make_domain("example.com")
    make_domain("other.test")
    UserFactory(email="ann@example.com")  # signs in, has no mailbox: a catch-all would get her reset links
    make_mailbox("bob@other.test")  # has a mailbox: a catch-all does not take his mail

    refused = mail_staff.post("/admin/mail/alias/add/", alias_form("@example.com", "thief@elsewhere.test"))
    allowed = mail_staff.post("/admin/mail/alias/add/", alias_form("@other.test", "postmaster@elsewhere.test"))

    assert "would receive mail meant for ann@example.com" in " ".join(errors(refused)["local_part"])
    assert allowed.status_code == 302
    assert list(Alias.objects.values_list("address", flat=True)) == ["@other.test"]


def test_mail_only_staff_cannot_keep_a_copy_of_a_superusers_mailbox_elsewhere(mail_staff):
    make_domain("example.com")
    root = StaffFactory(email="boss@example.com")
    services.mailbox_create(address="boss@example.com", person=root)
    services.mailbox_create(address="mailstaff@example.com", person=User.objects.get(email="mailstaff@example.com"))

    refused = mail_staff.post(
        "/admin/mail/alias/add/", alias_form("boss@example.com", "thief@elsewhere.test", keep_copy="on")
    )
    allowed = mail_staff.post(  # their own mailbox: their own mail
        "/admin/mail/alias/add/", alias_form("mailstaff@example.com", "me@elsewhere.test", keep_copy="on")
    )

    assert "would receive mail meant for boss@example.com" in " ".join(errors(refused)["keep_copy"])
    assert allowed.status_code == 302
    assert list(Alias.objects.values_list("address", flat=True)) == ["mailstaff@example.com"]


def test_mail_only_staff_cannot_redirect_an_existing_alias_on_a_sign_in_address(mail_staff):
    make_domain("example.com")
    UserFactory(email="ann@example.com")
    alias = services.alias_create(address="ann@example.com", targets=["ann@elsewhere.test"])
    url = f"/admin/mail/alias/{alias.pk}/change/"

    refused = change(mail_staff, url, targets_text="thief@elsewhere.test")
    unchanged_targets = change(mail_staff, url, description="Ann's forward")

    assert "would receive mail meant for ann@example.com" in " ".join(errors(refused)["targets_text"])
    assert unchanged_targets.status_code == 302
    alias.refresh_from_db()
    assert alias.target_list == ["ann@elsewhere.test"] and alias.description == "Ann's forward"


def test_mail_only_staff_cannot_make_a_list_at_a_persons_sign_in_address(mail_staff):
    make_domain("example.com")
    UserFactory(email="ann@example.com")

    refused = mail_staff.post(
        "/admin/mail/group/add/",
        {"name": "team", **address_fields("ann@example.com", "list_local_part", "list_domain")},
    )
    allowed = mail_staff.post(
        "/admin/mail/group/add/",
        {"name": "team", **address_fields("team@example.com", "list_local_part", "list_domain")},
    )

    assert "would receive mail meant for ann@example.com" in " ".join(errors(refused)["list_local_part"])
    assert allowed.status_code == 302


def test_a_mailbox_for_a_pending_registration_ends_it_and_drops_the_self_chosen_password(browser):
    make_domain("example.com")
    pending = UserFactory(email="ann@example.com", is_active=False, is_pending_registration=True)

    response = browser.post(
        "/admin/mail/mailbox/add/", {**address_fields("ann@example.com"), "person": "ann@example.com", "quota": ""}
    )

    assert response.status_code == 302
    pending.refresh_from_db()
    assert not pending.is_pending_registration
    assert not pending.has_usable_password() and not pending.check_password(PASSWORD)
    assert "pending registration was cancelled" in AuditEvent.objects.get(action="mail.mailbox.add").description


def test_staff_who_may_only_view_mailboxes_see_one_read_only():
    from django.contrib.auth.models import Permission

    ann = make_mailbox("ann@example.com")
    viewer = UserFactory(email="viewer@example.com", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_mailbox"))
    client = Client()
    client.force_login(viewer)
    page = client.get(f"/admin/mail/mailbox/{ann.pk}/change/")
    assert page.status_code == 200
    assert "ann@example.com" in page.content.decode() and 'name="quota"' not in page.content.decode()
