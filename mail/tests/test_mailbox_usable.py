"""The rule "mailbox usable" is one (Mailbox.is_usable, Mailbox.objects.usable()): only an active mailbox lets
its person sign in; suspended and disabled ones do not, and sign-in reads the same rule."""

import pytest

from accounts.backends import mailbox_allows_sign_in
from mail import services
from mail.models import Mailbox
from mail.tests.factories import make_mailbox

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("state", "usable"), [(Mailbox.ACTIVE, True), (Mailbox.SUSPENDED, False), (Mailbox.DISABLED, False)]
)
def test_only_an_active_mailbox_is_usable_for_the_property_the_query_and_sign_in(state, usable):
    mailbox = make_mailbox("bob@example.com")
    if state != Mailbox.ACTIVE:
        services.mailbox_set_state(mailbox=mailbox, state=state, actor_label="test")
    mailbox = Mailbox.objects.select_related("person").get(pk=mailbox.pk)

    assert mailbox.is_usable is usable
    assert Mailbox.objects.usable().filter(pk=mailbox.pk).exists() is usable
    assert mailbox_allows_sign_in(mailbox.person) is usable
