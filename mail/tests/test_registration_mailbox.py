"""Self-registration and mailboxes: a later sign-up never takes over a person an operator gave a mailbox."""

import pytest

from accounts.tests.test_registration import later_sign_up_attack, registration_on  # noqa: F401 - autouse fixture
from mail.models import Domain, Mailbox
from mail.tests.factories import make_domain

pytestmark = pytest.mark.django_db


def give_mailbox(person):
    domain = Domain.objects.filter(name="example.com").first() or make_domain("example.com")
    Mailbox.objects.create(person=person, domain=domain, local_part=person.email.partition("@")[0])


@pytest.mark.parametrize("activate", [False, True])
def test_a_later_sign_up_never_replaces_the_password_of_a_mailbox_person(client, activate):
    later_sign_up_attack(client, activate=activate, give_mailbox=give_mailbox)
