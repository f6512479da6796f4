"""In headless Chromium: a real Postfix 3.7 log ingested (maillog_lines/real_postfix_3_7.log, its lines re-dated to
the last minutes so the 30-day panels count them), an operator searches the admin's messages by recipient, opens the
message and reads its delivery attempts with the remote reply; Alice sees her bounces on her profile. No
Content-Security-Policy violation; saves screenshots to docs/images/ (26 to 28, not in the README's gallery yet)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.tests.factories import StaffFactory
from dockspace.tests.chromium import click_and_wait, shot
from mail.tests.factories import make_mailbox
from monitoring import traffic

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REAL_LOG = Path(__file__).parent / "maillog_lines" / "real_postfix_3_7.log"
LOG_END = datetime(2026, 12, 6, 23, 7, 23, tzinfo=UTC)  # a little after its last line
ALICE_PASSWORD = "river stone lantern 42"
NO_SUCH_USER = "550-5.1.1 The email account that you tried to reach does not exist."


def recent_copy(tmp_path):
    """The real log with each line's RFC 3339 time moved so that its last line was written a few minutes ago."""
    shift = timezone.now() - timedelta(minutes=5) - LOG_END
    lines = []
    for line in REAL_LOG.read_text().splitlines(keepends=True):
        stamp, rest = line.split(" ", 1)
        lines.append(f"{(datetime.fromisoformat(stamp) + shift).isoformat()} {rest}")
    copy = tmp_path / "mail.log"
    copy.write_text("".join(lines))
    return copy


def sign_in(page, email, password):
    page.goto(page.base + "/login/")
    page.fill("#id_email", email)
    page.fill("#id_password", password)
    click_and_wait(page, "main button[type=submit]")


def test_an_operator_finds_a_message_by_recipient_and_its_sender_sees_the_bounce(page, tmp_path):
    alice = make_mailbox("alice@example.com", password=ALICE_PASSWORD)  # before her mail: panels show from then on
    type(alice).objects.filter(pk=alice.pk).update(created_at=timezone.now() - timedelta(days=1))
    alice.refresh_from_db()
    traffic.maillog_ingest_file(str(recent_copy(tmp_path)), source=traffic.logsource_for())
    StaffFactory(email="admin@example.com")
    violations = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.set_viewport_size({"width": 1300, "height": 900})

    sign_in(page, "admin@example.com", "correct horse battery staple")
    page.goto(page.base + "/admin/monitoring/mailmessage/")
    assert page.locator("#result_list tbody tr").count() == 13
    page.fill("#searchbar", "reject.me@example.net")
    with page.expect_navigation(wait_until="load"):
        page.press("#searchbar", "Enter")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "greylist.me@example.net, reject.me@example.net, someone@example.net" in rows.inner_text()
    assert "alice@example.com" in rows.inner_text() and "mixed" in rows.inner_text()
    shot(page, "26-admin-messages")

    click_and_wait(page, "#result_list tbody tr th a")
    attempts = page.locator("#message-attempts tbody tr")
    assert attempts.count() == 4
    assert [attempts.nth(i).get_attribute("class") for i in range(4)] == [
        "attempt-deferred",
        "attempt-bounced",
        "attempt-sent",
        "attempt-sent",
    ]
    bounced = page.locator("#message-attempts tr.attempt-bounced")
    assert "reject.me@example.net" in bounced.inner_text()
    reply = bounced.locator("td.traffic-reply")
    assert NO_SUCH_USER in reply.inner_text() and "(in reply to RCPT TO command)" in reply.inner_text()
    # The whole reply is readable: it wraps inside its cell instead of widening the page.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator("#message-received").inner_text().count("alice@example.com") == 2  # sender, SASL user
    assert page.locator("#message-state").inner_text() == "mixed"
    shot(page, "27-admin-message")
    click_and_wait(page, "#message-notifications a")
    assert "Notification about" in page.locator("#message-received").inner_text()

    page.goto(page.base + f"/admin/mail/mailbox/{alice.pk}/change/")
    assert page.locator("#mailbox-traffic-sent").inner_text() == "3"
    assert page.locator("#mailbox-bounces tbody tr").count() == 3
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.context.clear_cookies()
    sign_in(page, "alice@example.com", ALICE_PASSWORD)
    page.goto(page.base + "/profile/")
    panel = page.locator("#mail-traffic")
    assert page.locator("#mail-traffic-sent").inner_text() == "3"
    bounces = panel.locator("#mail-bounces tbody tr")
    assert bounces.count() == 3
    assert "reject.me@example.net" in bounces.nth(2).inner_text() and NO_SUCH_USER in bounces.nth(2).inner_text()
    shot(page, "28-profile-mail-traffic")
    assert violations == []
