"""A mailbox's mail in the last 30 days (messages sent and received, its last bounces with the remote reply), from a
real Postfix 3.7 log: on the mailbox's admin page through mail's seam (MonitoringConfig.mailbox_admin_panel), for
staff who may view messages, and on the owner's profile through accounts' seam (MonitoringConfig.profile_panel),
where each person sees their own mailbox's only."""

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.models import User
from accounts.tests.factories import StaffFactory, UserFactory
from mail.tests.factories import make_mailbox
from monitoring import traffic
from monitoring.traffic_pages import mailbox_traffic

pytestmark = pytest.mark.django_db

REAL_LOG = Path(__file__).parent / "maillog_lines" / "real_postfix_3_7.log"
NOW = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
NO_SUCH_USER = "550-5.1.1 The email account that you tried to reach does not exist."
QUOTA = "552 5.2.2 <full@example.com> Quota exceeded (mailbox for user is full)"


@pytest.fixture(autouse=True)
def now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def logged():
    traffic.maillog_ingest_file(str(REAL_LOG), source=traffic.logsource_for())


def mailbox_made_before_the_log(address):
    """The log's mail came after the mailbox was made (a panel shows nothing from before: see the last test)."""
    mailbox = make_mailbox(address)
    type(mailbox).objects.filter(pk=mailbox.pk).update(created_at=NOW - timedelta(days=60))
    mailbox.refresh_from_db()
    return mailbox


@pytest.fixture
def alice(logged):
    return mailbox_made_before_the_log("alice@example.com")


@pytest.fixture
def fred(logged):
    """His mailbox is full: mail to him bounced."""
    return mailbox_made_before_the_log("full@example.com")


def html_of(person, url):
    client = Client()
    client.force_login(person)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def text_of(html, element_id):
    match = re.search(rf'<(\w+)[^>]* id="{element_id}">(.*?)</\1>', html, re.S)
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(2)))).strip() if match else None


def bounce_rows(html, table_id):
    table = re.search(rf'<table[^>]* id="{table_id}">(.*?)</table>', html, re.S)
    if table is None:
        return []
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1).split("<tbody>")[1], re.S)
    return [unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row))).strip() for row in rows]


def staff_with(*codenames):
    person = UserFactory(email="staff@example.com", is_staff=True)
    person.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return person


def mailbox_page(person, mailbox):
    return html_of(person, f"/admin/mail/mailbox/{mailbox.pk}/change/")


def test_the_mailbox_page_shows_its_mail_of_the_last_30_days(alice):
    html = mailbox_page(StaffFactory(email="root@example.com"), alice)

    assert "Mail in the last 30 days" in html
    assert text_of(html, "mailbox-traffic-sent") == "3"
    assert text_of(html, "mailbox-traffic-received") == "5"  # two from Bob and News, three of Postfix's reports
    rows = bounce_rows(html, "mailbox-bounces")
    assert len(rows) == 3  # newest first
    # An expired message's reason is the reply to its last try, not Postfix's "expired".
    assert rows[0] == (
        "2026-12-06 23:07 alice@example.com defer.me@example.net expired Given up after retrying; last reply: host "
        "127.0.0.1[127.0.0.1] said: 451 4.3.0 <defer.me@example.net>: Temporary lookup failure, try again later "
        "(in reply to RCPT TO command)"
    )
    assert rows[1] == (
        "2026-12-06 23:07 alice@example.com someone@refused.example.net expired Given up after retrying; last "
        "reply: connect to 127.0.0.1[127.0.0.1]:2525: Connection refused"
    )
    assert "reject.me@example.net bounced 5.1.1" in rows[2] and NO_SUCH_USER in rows[2]
    assert 'href="/admin/monitoring/mailmessage/?q=alice%40example.com"' in html


def test_mail_refused_to_a_full_mailbox_is_among_its_bounces(fred):
    html = mailbox_page(StaffFactory(email="root@example.com"), fred)

    assert (text_of(html, "mailbox-traffic-sent"), text_of(html, "mailbox-traffic-received")) == ("0", "0")
    [row] = bounce_rows(html, "mailbox-bounces")
    assert "sender@example.net full@example.com bounced 5.2.2" in row and QUOTA in row


def test_the_panel_is_for_staff_who_may_view_messages(alice):
    staff = staff_with("view_mailbox")
    without = mailbox_page(staff, alice)
    assert "Mail in the last 30 days" not in without and NO_SUCH_USER not in without

    staff.user_permissions.add(Permission.objects.get(codename="view_mailmessage"))
    with_it = mailbox_page(User.objects.get(pk=staff.pk), alice)  # permissions are cached on the object
    assert "Mail in the last 30 days" in with_it and NO_SUCH_USER in with_it


def test_mail_older_than_30_days_is_left_out(alice):
    with time_machine.travel(NOW + timedelta(days=30, minutes=-30), tick=False):
        html = mailbox_page(StaffFactory(email="root@example.com"), alice)
        assert text_of(html, "mailbox-traffic-sent") == "3"
    with time_machine.travel(NOW + timedelta(days=30), tick=False):
        html = mailbox_page(StaffFactory(email="root2@example.com"), alice)
        assert (text_of(html, "mailbox-traffic-sent"), text_of(html, "mailbox-traffic-received")) == ("0", "0")
        assert bounce_rows(html, "mailbox-bounces") == []
        assert "None: no mail from or to alice@example.com bounced in the last 30 days." in html


def test_each_person_sees_their_own_mail_on_their_profile_and_no_one_elses(alice, fred):
    hers = html_of(alice.person, "/profile/")
    his = html_of(fred.person, "/profile/")

    assert text_of(hers, "mail-traffic-sent") == "3" and text_of(hers, "mail-traffic-received") == "5"
    rows = bounce_rows(hers, "mail-bounces")
    assert len(rows) == 3 and NO_SUCH_USER in rows[2]
    assert QUOTA not in hers and "full@example.com" not in hers

    assert text_of(his, "mail-traffic-sent") == "0"
    [row] = bounce_rows(his, "mail-bounces")
    assert QUOTA in row
    assert NO_SUCH_USER not in his and "reject.me@example.net" not in his


def test_a_person_without_a_mailbox_has_no_mail_panel(logged):
    html = html_of(UserFactory(email="guest@example.com"), "/profile/")

    assert "Your mail in the last" not in html


def test_a_person_may_not_read_another_persons_mailbox_traffic(alice, fred):
    assert mailbox_traffic(actor=fred.person, mailbox=alice) is None
    assert mailbox_traffic(actor=alice.person, mailbox=alice).sent == 3
    assert mailbox_traffic(actor=StaffFactory(email="root@example.com"), mailbox=alice).sent == 3


def test_an_address_given_again_to_someone_else_does_not_show_its_last_owners_mail(alice):
    from mail import services

    assert mailbox_traffic(actor=alice.person, mailbox=alice).bounces  # the positive control: alice's own
    services.mailbox_remove(mailbox=alice, actor_label="test", keep_person=False)
    newcomer = make_mailbox("alice@example.com")  # made now, after the log's mail

    seen = mailbox_traffic(actor=newcomer.person, mailbox=newcomer)
    assert (seen.sent, seen.received, seen.bounces) == (0, 0, [])
    # The panel says from when it counts, instead of a bare "none in the last 30 days".
    assert seen.since == newcomer.created_at
    html = html_of(newcomer.person, "/profile/")
    assert "Since your mailbox was made" in html
