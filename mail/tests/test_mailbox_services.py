import pytest
from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError

from accounts.mail_hashes import verify_mail_hash
from accounts.models import AuditEvent, User
from mail import services
from mail.models import Mailbox, Tier

pytestmark = pytest.mark.django_db
PASSWORD = "river stone lantern 42"
G = 1024**3


@pytest.fixture
def domain():
    return services.domain_create(name="example.com", default_quota=2 * G)


def _error(exc):
    return " ".join(exc.value.messages)


def test_creating_a_mailbox_creates_the_person_who_signs_in_with_the_same_password(domain):
    mailbox = services.mailbox_create(address="Bob@Example.com", full_name="Bob", password=PASSWORD)
    assert mailbox.address == "bob@example.com"
    assert mailbox.quota == 2 * G
    person = User.objects.get(email="bob@example.com")
    assert authenticate(email="bob@example.com", password=PASSWORD) == person
    assert verify_mail_hash(PASSWORD, person.mail_password_hash)
    assert person.email_verified_at is not None
    assert AuditEvent.objects.filter(action="mail.mailbox.add", target_label="bob@example.com").exists()


def test_without_a_password_nobody_can_sign_in_but_dms_still_gets_a_hash(domain):
    mailbox = services.mailbox_create(address="nopw@example.com")
    person = mailbox.person
    assert not person.has_usable_password()
    assert person.mail_password_hash.startswith("{SHA512-CRYPT}$6$")


def test_changing_the_password_anywhere_changes_the_dms_hash_too(domain):
    mailbox = services.mailbox_create(address="bob@example.com", password=PASSWORD)
    person = User.objects.get(pk=mailbox.person_pk) if hasattr(mailbox, "person_pk") else mailbox.person
    person.set_password("a different long secret")
    person.save()
    person.refresh_from_db()
    assert verify_mail_hash("a different long secret", person.mail_password_hash)
    assert not verify_mail_hash(PASSWORD, person.mail_password_hash)


def test_a_mailbox_can_be_given_to_an_existing_person_without_one(domain):
    person = User.objects.create_user("contractor@elsewhere.org", PASSWORD)
    mailbox = services.mailbox_create(address="contractor@example.com", person=person)
    assert mailbox.person == person
    with pytest.raises(ValidationError) as e:
        services.mailbox_create(address="second@example.com", person=person)
    assert "already owns the mailbox contractor@example.com" in _error(e)


@pytest.mark.parametrize(
    "address, message",
    [
        ("bob@unmanaged.org", "unmanaged.org is not a domain Dockspace manages"),
        ("bob smith@example.com", "spaces"),
        ("bob|x@example.com", "'|'"),
        ("BOB@example.com", "already a mailbox"),
    ],
)
def test_bad_mailbox_addresses_are_refused_and_nothing_changes(domain, address, message):
    services.mailbox_create(address="bob@example.com")
    before = (Mailbox.objects.count(), User.objects.count(), AuditEvent.objects.count())
    with pytest.raises(ValidationError) as e:
        services.mailbox_create(address=address)
    assert message in _error(e)
    assert (Mailbox.objects.count(), User.objects.count(), AuditEvent.objects.count()) == before


def test_a_weak_password_is_refused_and_no_person_is_created(domain):
    with pytest.raises(ValidationError) as e:
        services.mailbox_create(address="bob@example.com", password="123")
    assert "password" in e.value.message_dict
    assert not User.objects.filter(email="bob@example.com").exists()


def test_an_alias_address_cannot_become_a_mailbox(domain):
    services.mailbox_create(address="bob@example.com")
    services.alias_create(address="info@example.com", targets=["bob@example.com"])
    with pytest.raises(ValidationError) as e:
        services.mailbox_create(address="info@example.com")
    assert "info@example.com is already an alias" in _error(e)


def test_tier_limits_name_the_limit(domain):
    tier = Tier.objects.create(name="small", max_mailboxes=2, max_quota_per_mailbox=G, total_quota=G + G // 4)
    services.domain_update(domain=domain, tier=tier, default_quota=G // 2)
    services.mailbox_create(address="a@example.com")
    with pytest.raises(ValidationError) as e:
        services.mailbox_create(address="b@example.com", quota=2 * G)
    assert "(max quota per mailbox)" in _error(e)
    with pytest.raises(ValidationError) as e:
        services.mailbox_create(address="b@example.com", quota=G)
    assert "(total quota)" in _error(e)
    services.mailbox_create(address="b@example.com")
    with pytest.raises(ValidationError) as e:
        services.mailbox_create(address="c@example.com")
    assert "at most 2 mailboxes on example.com (max mailboxes)" in _error(e)
    assert Mailbox.objects.count() == 2


def test_suspending_blocks_sign_in_and_resuming_restores_it(domain):
    mailbox = services.mailbox_create(address="bob@example.com", password=PASSWORD)
    services.mailbox_set_state(mailbox=mailbox, state=Mailbox.SUSPENDED)
    assert authenticate(email="bob@example.com", password=PASSWORD) is None
    services.mailbox_set_state(mailbox=mailbox, state=Mailbox.ACTIVE)
    assert authenticate(email="bob@example.com", password=PASSWORD) is not None
    actions = list(AuditEvent.objects.filter(target_label="bob@example.com").values_list("action", flat=True))
    assert "mail.mailbox.suspend" in actions and "mail.mailbox.resume" in actions


def test_removing_a_mailbox_keeps_the_person_and_drops_it_from_aliases(domain):
    bob = services.mailbox_create(address="bob@example.com")
    services.mailbox_create(address="al@example.com")
    alias = services.alias_create(address="info@example.com", targets=["bob@example.com", "al@example.com"])
    services.mailbox_remove(mailbox=bob)
    assert User.objects.filter(email="bob@example.com").exists()
    assert alias.target_list == ["al@example.com"]


def test_a_person_whose_password_predates_their_mailbox_gets_it_for_mail_at_the_next_sign_in(domain):
    person = User.objects.create_user("bob@example.com", PASSWORD)
    User.objects.filter(pk=person.pk).update(mail_password_hash="")  # as for people from before mail existed
    mailbox = services.mailbox_create(address="bob@example.com", person=person)
    assert mailbox.person == person
    person.refresh_from_db()
    assert not verify_mail_hash(PASSWORD, person.mail_password_hash)
    assert authenticate(email="bob@example.com", password=PASSWORD) == person
    person.refresh_from_db()
    assert verify_mail_hash(PASSWORD, person.mail_password_hash)
