"""The admin's mail messages, from a real Postfix 3.7 log (maillog_lines/real_postfix_3_7.log) ingested as the
follower would: found by recipient, sender, Message-ID and queue ID, filtered by state, direction and time; one
message's page tells its story (client, SASL user, each attempt with the remote reply in full, the final state, the
bounce notification Postfix sent). Read only, and only for staff who may view messages."""

import re
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from accounts.tests.factories import StaffFactory, UserFactory
from monitoring import traffic
from monitoring.models import DeliveryAttempt, MailMessage

pytestmark = pytest.mark.django_db

REAL_LOG = Path(__file__).parent / "maillog_lines" / "real_postfix_3_7.log"
MESSAGES = "/admin/monitoring/mailmessage/"
# The log was written from 23:07 to 23:08 on 6 December 2026.
NOW = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
GOOGLE_550 = (
    "host 127.0.0.1[127.0.0.1] said: 550-5.1.1 The email account that you tried to reach does not exist. Please try "
    "550-5.1.1 double-checking the recipient's email address for typos or 550-5.1.1 unnecessary spaces. For more "
    "information, go to 550 5.1.1  https://support.google.com/mail/?p=NoSuchUser "
    "a640c23a62f3a-a7a3b5e2f1asi1234567ex.123 - gsmtp (in reply to RCPT TO command)"
)


@pytest.fixture(autouse=True)
def now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def logged():
    traffic.maillog_ingest_file(str(REAL_LOG), source=traffic.logsource_for())


def signed_in(person):
    client = Client()
    client.force_login(person)
    return client


def staff_with(*codenames, email="viewer@example.com"):
    person = UserFactory(email=email, is_staff=True)
    person.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return person


@pytest.fixture
def viewer():
    return signed_in(staff_with("view_mailmessage"))


def listed(client, query=""):
    """The queue IDs of the messages a list page shows, top to bottom."""
    response = client.get(MESSAGES + query)
    assert response.status_code == 200
    return [str(row) for row in response.context["cl"].result_list]


def queue_ids(client, query=""):
    return [row.split(" ")[0] for row in listed(client, query)]


def page(client, queue_id):
    message = MailMessage.objects.get(queue_id=queue_id)
    response = client.get(f"{MESSAGES}{message.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def section_html(html, element_id):
    """The inside of the element with this id (one that holds no element of its own kind)."""
    match = re.search(rf'<(\w+)[^>]* id="{element_id}">(.*?)</\1>', html, re.S)
    assert match, element_id
    return match.group(2)


def section(html, element_id):
    """The text of the element with this id, as a reader sees it."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", section_html(html, element_id)))).strip()


def test_staff_without_the_permission_to_view_messages_get_403(logged):
    message = MailMessage.objects.get(queue_id="17B152108AF")
    refused = signed_in(staff_with("view_mailhost", email="other@example.com"))

    assert refused.get(MESSAGES).status_code == 403
    assert refused.get(f"{MESSAGES}{message.pk}/change/").status_code == 403
    # The change permission alone (Django lets it stand in for viewing) does not open the messages either.
    changer = signed_in(staff_with("change_mailmessage", email="changer@example.com"))
    for url in (MESSAGES, f"{MESSAGES}?q=alice@example.com", f"{MESSAGES}{message.pk}/change/"):
        assert changer.get(url).status_code == 403, url
    allowed = signed_in(staff_with("view_mailmessage"))
    assert allowed.get(MESSAGES).status_code == 200
    assert allowed.get(f"{MESSAGES}{message.pk}/change/").status_code == 200


def test_a_message_is_found_by_recipient_sender_message_id_and_queue_id(logged, viewer):
    assert queue_ids(viewer, "?q=reject.me@example.net") == ["17B152108AF"]
    assert queue_ids(viewer, "?q=Reject.Me@example.net") == ["17B152108AF"]  # addresses also in lower case
    assert queue_ids(viewer, "?q=carol@example.org") == ["1BC8D2108B3"]
    assert queue_ids(viewer, "?q=%3C179659844010.22382.3514452317530527056@example.org%3E") == ["1BC8D2108B3"]
    assert queue_ids(viewer, "?q=1bc8d2108b3") == ["1BC8D2108B3"]
    # Alice sent three messages and received five (three of them Postfix's reports of her bounces), and one to her was
    # refused by a header check (it has no delivery attempt: its refusal names her); from Alice to one address:
    assert len(listed(viewer, "?q=alice@example.com")) == 9
    assert "0F1432108A9" in queue_ids(viewer, "?q=alice@example.com")
    assert queue_ids(viewer, "?q=alice@example.com+defer.me@example.net") == ["1D8592108B4"]
    assert queue_ids(viewer, "?q=nobody@nowhere.example") == []


def test_the_list_shows_time_direction_sender_recipients_size_state_and_sasl_user(logged, viewer):
    html = viewer.get(MESSAGES + "?q=17B152108AF").content.decode()
    row = re.search(r"<tbody>\s*<tr>(.*?)</tr>", section_html(html, "result_list"), re.S).group(1)
    cells = [unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)]

    assert cells == [
        "2026-12-06 23:07:20",
        "sent",
        "alice@example.com",
        "greylist.me@example.net, reject.me@example.net, someone@example.net",
        "540\xa0bytes",
        "mixed",
        "alice@example.com",
    ]
    assert 'class="state-warn"' in row


def test_filters_narrow_the_list_by_state_direction_and_time(logged, viewer):
    assert set(queue_ids(viewer, "?state__exact=bounced")) == {"1FFDB2108B9"}
    assert set(queue_ids(viewer, "?state__exact=expired")) == {"1EE5C2108B6", "1D8592108B4"}
    received = set(queue_ids(viewer, "?direction__exact=in"))
    assert received == {"05EC52108A9", "070C12108AA", "0F1432108A9", "1FFDB2108B9"}
    assert len(listed(viewer)) == 13
    assert len(listed(viewer, "?seen=today")) == len(listed(viewer, "?seen=24h")) == 13
    assert listed(viewer, "?seen_from=2026-12-07") == []
    assert len(listed(viewer, "?seen_from=2026-12-06&seen_to=2026-12-06")) == 13
    assert listed(viewer, "?seen_to=2026-12-05") == []
    with time_machine.travel(datetime(2026, 12, 14, 12, tzinfo=UTC), tick=False):
        a_week_later = signed_in(User.objects.get(email="viewer@example.com"))
        assert listed(a_week_later, "?seen=7d") == []
        assert len(listed(a_week_later, "?seen=7d&seen_from=2026-12-01")) == 13  # a date range replaces the preset


def test_a_date_that_is_not_one_is_named_and_ignored(logged, viewer):
    response = viewer.get(MESSAGES + "?seen_from=6.12.2026")

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 13
    assert "From: '6.12.2026' is not a date; enter it as YYYY-MM-DD" in unescape(response.content.decode())


def test_the_time_filter_form_keeps_the_search_and_the_other_filters(logged, viewer):
    html = viewer.get(MESSAGES + "?q=alice@example.com&state__exact=expired&seen=24h").content.decode()
    form = re.search(r'<form method="get" class="traffic-time-range".*?</form>', html, re.S).group(0)

    assert '<input type="hidden" name="q" value="alice@example.com">' in form
    assert '<input type="hidden" name="state__exact" value="expired">' in form
    assert 'name="seen"' not in form


def test_a_message_page_tells_its_whole_story(logged, viewer):
    html = page(viewer, "17B152108AF")

    received = section(html, "message-received")
    for fact in (
        "Client unknown [127.0.0.10]",
        "SASL user alice@example.com",
        "Size 540 bytes Recipients 3",
        "Message-ID <179659844006.22382.10711462678909725156@example.com>",
        "Queue ID 17B152108AF",
        "Log source local",
        "Direction sent",
    ):
        assert fact in received
    rows = re.findall(r'<tr class="attempt-(\w+)">(.*?)</tr>', html, re.S)
    assert [status for status, _ in rows] == ["deferred", "bounced", "sent", "sent"]  # in time order
    texts = [unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row))) for _, row in rows]
    assert "greylist.me@example.net" in texts[0] and "451 4.7.1" in texts[0]
    assert "reject.me@example.net" in texts[1] and "127.0.0.1[127.0.0.1]:25" in texts[1] and "5.1.1" in texts[1]
    assert GOOGLE_550 in unescape(rows[1][1])  # the remote reply in full
    assert 'class="state-bad">bounced' in rows[1][1] and 'class="state-ok">sent' in rows[2][1]
    assert "0.05 s" in texts[1] and "0.02/0/0/0.03" in texts[1]
    assert section(html, "message-state") == "mixed"
    notification = MailMessage.objects.get(queue_id="222582108BB")
    assert f'href="{MESSAGES}{notification.pk}/change/">222582108BB</a>' in html


def test_the_sending_ip_of_a_pooled_transport_is_shown(logged, viewer):
    html = page(viewer, "1BC8D2108B3")

    row = unescape(re.sub(r"<[^>]+>", " ", re.search(r'<tr class="attempt-sent">(.*?)</tr>', html, re.S).group(1)))
    assert "out-127-0-0-2" in row and "127.0.0.2" in row and "dave@example.net" in row


def test_each_bounce_notification_belongs_to_the_message_it_reports(logged, viewer):
    # Alice's two messages expired 5 ms apart; Postfix queued one notification for each.
    for original, notification in (("1EE5C2108B6", "72FEC21015E"), ("1D8592108B4", "73D7D2105B2")):
        html = page(viewer, original)
        assert section(html, "message-state") == "expired"
        assert re.findall(r">([0-9A-F]{11})</a> \(", section_html(html, "message-notifications")) == [notification]
        back = page(viewer, notification)
        assert re.search(rf"Notification about.*?>{original}</a>", back, re.S)
    delivered = page(viewer, "1BC8D2108B3")
    assert "Bounce notification" not in delivered


def test_a_message_refused_at_smtp_shows_the_refusal(logged, viewer):
    html = page(viewer, "0F1432108A9")

    assert section(html, "message-state") == "rejected"
    assert "No delivery attempt in the log." in html
    assert "refused at header" in html and "Message content rejected" in html


def test_nothing_can_be_added_changed_or_deleted(logged):
    admin = signed_in(StaffFactory(email="root@example.com"))  # a superuser: every permission
    message = MailMessage.objects.get(queue_id="17B152108AF")
    change = f"{MESSAGES}{message.pk}/change/"
    before = list(MailMessage.objects.values_list()), list(DeliveryAttempt.objects.values_list())

    assert admin.get(MESSAGES + "add/").status_code == 403
    assert admin.post(change, {"queue_id": "FORGED"}).status_code == 403
    assert admin.get(f"{MESSAGES}{message.pk}/delete/").status_code == 403
    assert admin.post(f"{MESSAGES}{message.pk}/delete/", {"post": "yes"}).status_code == 403
    listing = admin.get(MESSAGES).content.decode()
    assert 'name="action"' not in listing and "action-checkbox" not in listing
    assert 'name="_save"' not in admin.get(change).content.decode()
    assert (list(MailMessage.objects.values_list()), list(DeliveryAttempt.objects.values_list())) == before


def test_the_list_counts_once_and_its_queries_do_not_grow_with_the_rows_shown(logged, viewer):
    def queries(query):
        with CaptureQueriesContext(connection) as captured:
            shown = len(listed(viewer, query))
        return shown, [q["sql"] for q in captured.captured_queries]

    listed(viewer, "?seen=today")  # the site's first request of a test does more (its settings row)
    one, few = queries("?q=reject.me@example.net")
    many, more = queries("")

    assert (one, many) == (1, 13)
    assert len(few) == len(more) + 1  # the search word's refusals with a queue id, read once: not per row
    # The paginator's count of what the search found, and no second count of the whole history beside it.
    [count] = [sql for sql in few if "COUNT(" in sql]
    assert "WHERE" in count


def test_a_search_of_a_thousand_words_or_a_date_at_the_end_of_time_is_a_page_not_a_500(logged, viewer):
    words = "+".join(f"a{i}@example.com" for i in range(1000))
    assert viewer.get(f"{MESSAGES}?q={words}").status_code == 200
    for query in ("seen_to=9999-12-31", "seen_from=0001-01-01"):
        response = viewer.get(f"{MESSAGES}?{query}")
        assert response.status_code == 200
        assert "is outside the years 1900 to 9000" in response.content.decode()


def test_the_story_and_the_search_refuse_whoever_may_not_view_messages(logged):
    from django.core.exceptions import ValidationError

    from monitoring.traffic_pages import message_search, message_story

    outsider = staff_with("view_mailbox", email="mail-only@example.com")
    message = MailMessage.objects.get(queue_id="17B152108AF")
    with pytest.raises(ValidationError, match="monitoring.view_mailmessage"):
        message_story(outsider, message)
    with pytest.raises(ValidationError, match="monitoring.view_mailmessage"):
        message_search(outsider, MailMessage.objects.all(), "alice@example.com")
    assert message_story(staff_with("view_mailmessage"), message).message == message
