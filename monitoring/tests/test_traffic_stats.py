"""The traffic selectors (monitoring.traffic_stats) on stored logs: totals that agree with pflogsumm's Grand Totals on
the real Postfix 3.7 capture, the DMS sample and a generated log; ranges; breakdowns; series per hour and per day;
the rollups that outlive the raw rows and the pruning; the message search and a message's story; who may read."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError

from accounts.authz import SYSTEM
from accounts.tests.factories import UserFactory
from monitoring import traffic_rollups, traffic_stats
from monitoring.maillog import counting
from monitoring.models import DeliveryAttempt, MailMessage, SmtpRejection
from monitoring.tests.traffic_logs import (
    AFTER_SAMPLES,
    DMS,
    REAL_POSTFIX,
    generated_log,
    ingest_file,
    pflogsumm_totals,
)
from monitoring.traffic_models import TrafficDaily, TrafficHourly, TrafficTally
from monitoring.traffic_stats import message_search, message_story, traffic_breakdown, traffic_series, traffic_totals

pytestmark = pytest.mark.django_db

EVER = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)
PFLOGSUMM_KEYS = (
    "received",
    "delivered",
    "forwarded",
    "deferred",
    "deferrals",
    "bounced",
    "rejected",
    "rejected_percent",
    "reject_warnings",
    "held",
    "discarded",
    "discarded_percent",
    "bytes_received",
    "bytes_delivered",
    "senders",
    "sending_hosts_domains",
    "recipients",
    "recipient_hosts_domains",
)
ADDITIVE = ("received", "delivered", "forwarded", "deferrals", "bounced", "expired", "rejected", "bytes_received",
            "bytes_delivered", "accepted")  # fmt: skip


@pytest.fixture(autouse=True)
def keep_every_line(settings):
    settings.TRAFFIC_DAYS = 36500  # the samples are dated 2026: keep them raw whatever the day the tests run


def everything():
    return traffic_totals(SYSTEM, since=EVER, until=FAR)


def pflogsumm_part(totals):
    values = totals.as_dict()
    return {key: values[key] for key in PFLOGSUMM_KEYS}


# --- totals as pflogsumm counts them ---------------------------------------------------------------------------


@pytest.mark.parametrize("sample", [REAL_POSTFIX, DMS], ids=["real_postfix_3_7", "dms"])
def test_totals_of_a_stored_log_agree_with_pflogsumm(sample):
    expected = pflogsumm_totals(sample)
    ingest_file(sample)
    assert pflogsumm_part(everything()) == {key: expected[key] for key in PFLOGSUMM_KEYS}


def test_totals_of_a_generated_log_agree_with_pflogsumm_and_count_port_465_apart(tmp_path):
    log = generated_log(tmp_path, lines=20_000)
    expected = pflogsumm_totals(log)
    ingest_file(log)
    totals = everything()
    assert pflogsumm_part(totals) == {key: expected[key] for key in PFLOGSUMM_KEYS}
    # pflogsumm does not count what postfix/submissions/smtpd (port 465) took in; "accepted" does.
    on_465 = MailMessage.objects.filter(received_by="postfix/submissions/smtpd").count()
    assert on_465 > 0
    assert totals.accepted == totals.received + on_465


def test_the_dms_sample_in_figures_an_operator_checks():
    ingest_file(DMS)
    totals = everything()
    assert (totals.received, totals.delivered_local, totals.delivered_remote) == (6, 3, 3)
    assert (totals.deferred, totals.deferrals, totals.bounced, totals.expired, totals.rejected) == (2, 2, 1, 1, 3)
    assert totals.bounce_rate == pytest.approx(1 / 8, abs=1e-4)  # 6 delivered, 1 bounced, 1 expired
    assert totals.deferral_rate == pytest.approx(2 / 9, abs=1e-4)  # 2 deferrals among 9 attempts
    assert totals.by_direction["in"]["rejected"] == 3
    assert totals.by_direction["out"]["delivered_remote"] == 3


def test_a_range_counts_each_line_at_its_own_time():
    ingest_file(DMS)
    # 09:10-09:25: 6C3D (deferred 09:10, sent 09:15) and 7D4E (bounced 09:20) came in; the notification 8E5F was
    # delivered locally at 09:20; 4A1B (09:00) and the expiry (12-11) are outside.
    totals = traffic_totals(
        SYSTEM, since=datetime(2026, 12, 6, 9, 10, tzinfo=UTC), until=datetime(2026, 12, 6, 9, 25, tzinfo=UTC)
    )
    assert (totals.received, totals.delivered_remote, totals.delivered_local) == (2, 1, 1)
    assert (totals.deferred, totals.deferrals, totals.bounced, totals.rejected, totals.expired) == (1, 1, 1, 0, 0)
    assert totals.bytes_received == 1999 + 3050
    assert (totals.senders, totals.recipients) == (2, 2)


def test_since_after_until_is_refused_naming_since():
    with pytest.raises(ValidationError) as caught:
        traffic_totals(SYSTEM, since=FAR, until=EVER)
    assert "since" in caught.value.message_dict


@pytest.mark.parametrize(
    "text, expected",
    [
        ("24h", AFTER_SAMPLES - timedelta(hours=24)),
        ("1h30m", AFTER_SAMPLES - timedelta(minutes=90)),
        ("2026-12-06T10:00:00+00:00", datetime(2026, 12, 6, 10, tzinfo=UTC)),
        ("2026-12-06", datetime(2026, 12, 6, tzinfo=UTC)),  # TIME_ZONE is UTC in the tests
    ],
)
def test_moments_are_typed_as_durations_or_dates(text, expected):
    assert traffic_stats.parse_moment(text, field="since", now=AFTER_SAMPLES) == expected


@pytest.mark.parametrize("text", ["yesterday", "24 hours", "", "2026-13-01"])
def test_a_moment_that_is_neither_is_refused_naming_the_field(text):
    with pytest.raises(ValidationError) as caught:
        traffic_stats.parse_moment(text, field="until", now=AFTER_SAMPLES)
    assert list(caught.value.message_dict) == ["until"]
    assert "duration" in caught.value.message_dict["until"][0]


# --- breakdowns -------------------------------------------------------------------------------------------------


def rows(breakdown):
    return {row.key: row.values for row in breakdown.rows}


@pytest.mark.parametrize(
    "by, expected",
    [
        (
            "sender_domain",
            {
                "example.com": {"messages": 3, "bytes": 7923, "delivered": 3, "deferrals": 1, "bounced": 1,
                                "expired": 0, "rejected": 0},
                "mail.example.com": {"messages": 1, "bytes": 812, "delivered": 0, "deferrals": 1, "bounced": 0,
                                     "expired": 1, "rejected": 0},
            },
        ),
        ("recipient_domain", {"example.org": {"delivered": 2, "deferrals": 0, "bounced": 1, "expired": 0,
                                              "rejected": 0}}),
        ("recipient", {"erin@example.net": {"delivered": 1, "deferrals": 1, "bounced": 0, "expired": 0,
                                            "rejected": 0}}),
        ("remote", {"example.net": {"delivered": 1, "deferrals": 1, "bounced": 0, "expired": 0},
                    "gone.example": {"delivered": 0, "deferrals": 1, "bounced": 0, "expired": 1}}),
        ("ip", {"192.0.2.10": {"delivered": 2, "deferrals": 0, "bounced": 1, "expired": 0},
                "192.0.2.11": {"delivered": 1, "deferrals": 1, "bounced": 0, "expired": 0},
                "": {"delivered": 0, "deferrals": 1, "bounced": 0, "expired": 1}}),
        ("sasl", {"alice@example.com": {"messages": 2, "bytes": 4873, "delivered": 3, "deferrals": 1, "bounced": 0,
                                        "expired": 0},
                  "bob@example.com": {"messages": 1, "bytes": 3050, "delivered": 0, "deferrals": 0, "bounced": 1,
                                      "expired": 0}}),
        ("status", {"delivered": {"messages": 5, "in": 1, "out": 4, "unknown": 0},
                    "rejected": {"messages": 1, "in": 1, "out": 0, "unknown": 0}}),
        ("reason", {"554 5.7.1 Relay access denied": {"rejected": 1, "warnings": 0, "held": 0, "discarded": 0},
                    "550 5.7.1 Service unavailable; client [...] blocked using zen.spamhaus.org": {
                        "rejected": 1, "warnings": 0, "held": 0, "discarded": 0}}),
    ],
)  # fmt: skip
def test_breakdowns_name_what_the_log_tells(by, expected):
    ingest_file(DMS)
    found = rows(traffic_breakdown(SYSTEM, by=by, since=EVER, until=FAR))
    assert {key: found.get(key) for key in expected} == expected


def test_a_breakdown_lists_the_busiest_first_up_to_the_limit_and_says_how_many_there_were():
    ingest_file(DMS)
    breakdown = traffic_breakdown(SYSTEM, by="recipient", since=EVER, until=FAR, limit=2)
    assert breakdown.keys_total == 9
    assert len(breakdown.rows) == 2
    # alice: one delivery and two refusals; erin: two attempts
    assert [row.key for row in breakdown.rows] == ["alice@example.com", "erin@example.net"]


def test_an_unknown_breakdown_is_refused_naming_by():
    with pytest.raises(ValidationError) as caught:
        traffic_breakdown(SYSTEM, by="planet", since=EVER, until=FAR)
    assert "sender_domain" in caught.value.message_dict["by"][0]


# --- series -----------------------------------------------------------------------------------------------------


def test_the_24h_series_counts_each_hour_by_direction():
    ingest_file(DMS)
    series = traffic_series(SYSTEM, span="24h", now=datetime(2026, 12, 6, 10, 30, tzinfo=UTC))
    assert len(series.points) == 24
    assert series.points[-1].start == datetime(2026, 12, 6, 10, tzinfo=UTC)
    nine = series.points[-2]
    assert nine.start == datetime(2026, 12, 6, 9, tzinfo=UTC)
    assert nine.values["out"]["accepted"] == 4 and nine.values["in"]["accepted"] == 2
    assert nine.values["out"]["delivered_remote"] == 3 and nine.values["out"]["deferrals"] == 2
    assert nine.values["out"]["bounced"] == 1 and nine.values["in"]["rejected"] == 3
    assert all(point.total("accepted") == 0 for point in series.points[:-2])


def test_the_90d_series_reads_the_daily_rollups():
    with time_machine.travel(AFTER_SAMPLES, tick=False):
        ingest_file(DMS)
        traffic_rollups.traffic_rollup()
        DeliveryAttempt.objects.all().delete()  # the series must come from the rollups now, not the raw rows
        series = traffic_series(SYSTEM, span="90d")
    assert len(series.points) == 90 and series.points[-1].start == datetime(2026, 12, 12, tzinfo=UTC)
    by_day = {point.start.day: point for point in series.points[-7:]}
    assert by_day[6].total("delivered_remote") == 3 and by_day[6].total("accepted") == 6
    assert by_day[11].total("delivered_local") == 1 and by_day[11].total("expired") == 1


# --- rollups and pruning ----------------------------------------------------------------------------------------


def additive(totals):
    return {key: totals.as_dict()[key] for key in ADDITIVE}


def test_the_rollups_keep_the_sums_after_the_raw_rows_are_pruned(settings):
    settings.TRAFFIC_DAYS = 30
    with time_machine.travel(AFTER_SAMPLES, tick=False):
        ingest_file(DMS)
        raw = traffic_totals(SYSTEM, since=AFTER_SAMPLES - timedelta(days=10))
        domains = rows(traffic_breakdown(SYSTEM, by="sender_domain", since=AFTER_SAMPLES - timedelta(days=10)))
        traffic_rollups.traffic_rollup()
    later = AFTER_SAMPLES + timedelta(days=31)
    with time_machine.travel(later, tick=False):
        result = traffic_rollups.traffic_prune()
        assert (result.messages, result.rejections) == (8, 3)
        assert not MailMessage.objects.exists() and not DeliveryAttempt.objects.exists()
        assert not SmtpRejection.objects.exists()
        totals = traffic_totals(SYSTEM, since=later - timedelta(days=41))
        assert totals.read_from == "rollups"
        assert additive(totals) == additive(raw)
        assert (totals.deferred, totals.senders, totals.recipients) == (None, None, None)
        assert rows(traffic_breakdown(SYSTEM, by="sender_domain", since=later - timedelta(days=41))) == domains
        with pytest.raises(ValidationError) as caught:
            traffic_breakdown(SYSTEM, by="sender", since=later - timedelta(days=41))
        assert "DOCKSPACE_TRAFFIC_DAYS" in caught.value.message_dict["by"][0]


def test_pruning_keeps_messages_seen_within_the_days_and_deletes_in_id_range_batches(settings, monkeypatch):
    settings.TRAFFIC_DAYS = 30
    monkeypatch.setattr(traffic_rollups, "PRUNE_BATCH", 2)
    ingest_file(DMS)
    # 30 days after 2026-12-07: the messages of 12-06 go, the one retried until 12-11 and its notification stay.
    with time_machine.travel(datetime(2027, 1, 6, tzinfo=UTC), tick=False):
        result = traffic_rollups.traffic_prune()
    assert sorted(MailMessage.objects.values_list("queue_id", flat=True)) == ["9F6A7B8C9D", "BC8C9DAEBF"]
    assert DeliveryAttempt.objects.filter(message__queue_id="9F6A7B8C9D").count() == 2  # its whole story
    assert (result.messages, result.attempts, result.rejections) == (6, 7, 3)


def test_rollups_older_than_90_days_go_and_their_sums_stay_in_the_tallies(settings):
    settings.TRAFFIC_DAYS = 30
    with time_machine.travel(AFTER_SAMPLES, tick=False):
        ingest_file(DMS)
        traffic_rollups.traffic_rollup()
    hourly = Counter()
    for row in TrafficHourly.objects.filter(dimension=""):
        hourly[row.direction, row.measure] += row.value
    with time_machine.travel(AFTER_SAMPLES + timedelta(days=92), tick=False):
        result = traffic_rollups.traffic_prune()
    assert result.hourly > 0 and result.daily > 0
    assert not TrafficHourly.objects.exists() and not TrafficDaily.objects.exists()
    tallies = Counter({(t.direction, t.measure): t.value for t in TrafficTally.objects.filter(dimension="")})
    assert tallies == hourly


def test_a_rollup_is_idempotent_and_upserts_each_bucket():
    with time_machine.travel(AFTER_SAMPLES, tick=False):
        ingest_file(DMS)
        traffic_rollups.traffic_rollup()
        first = sorted(TrafficHourly.objects.values_list("bucket", "dimension", "key", "direction", "measure", "value"))
        ids = set(TrafficHourly.objects.values_list("id", flat=True))
        traffic_rollups.traffic_rollup()
    assert sorted(TrafficHourly.objects.values_list("bucket", "dimension", "key", "direction", "measure", "value")) == (
        first
    )
    assert set(TrafficHourly.objects.values_list("id", flat=True)) == ids  # updated in place, not replaced


def test_an_archive_ingested_late_is_rolled_up_into_its_own_days():
    with time_machine.travel(AFTER_SAMPLES, tick=False):
        ingest_file(REAL_POSTFIX)  # 2026-12-06 23:07
        for _ in range(3):  # the ids seen move past what is stored
            traffic_rollups.traffic_rollup()
        ingest_file(DMS, source="archive")  # 2026-12-06 09:xx, six days before "today"
        traffic_rollups.traffic_rollup()
    nine = TrafficHourly.objects.filter(bucket=datetime(2026, 12, 6, 9, tzinfo=UTC), dimension="", direction="out")
    assert dict(nine.values_list("measure", "value"))["delivered_remote"] == 3


# --- the message search and a message's story -------------------------------------------------------------------


def test_search_by_recipient_finds_the_message_and_its_attempts():
    ingest_file(DMS)
    found = message_search(SYSTEM, to="Erin@Example.NET")
    assert [m.queue_id for m in found.messages] == ["6C3D4E5F6A"]
    story = message_story(SYSTEM, found.messages[0].id)
    assert story.reception.received_by == "postfix/submission/smtpd"
    assert (story.reception.client, story.reception.sasl_username, story.reception.size) == (
        "unknown[198.51.100.23]",
        "alice@example.com",
        1999,
    )
    assert [(a.status, a.sending_ip, a.dsn) for a in story.attempts] == [
        ("deferred", "192.0.2.11", "4.2.0"),
        ("sent", "192.0.2.11", "2.0.0"),
    ]
    assert "Greylisted" in story.attempts[0].reply
    assert story.final.state == "delivered" and story.final.recipients == {"erin@example.net": "sent"}
    assert story.final.summary == "Delivered (recipients: sent 1)."


def test_search_by_original_recipient_sender_message_id_queue_id_and_state():
    ingest_file(REAL_POSTFIX)
    assert [m.queue_id for m in message_search(SYSTEM, to="info@example.com").messages] == ["070C12108AA"]
    by_sender = message_search(SYSTEM, sender="<>")
    assert {m.queue_id for m in by_sender.messages} == {"222582108BB", "2A37C2108B8", "72FEC21015E", "73D7D2105B2"}
    mid = "179659844010.22382.3514452317530527056@example.org"
    assert [m.queue_id for m in message_search(SYSTEM, message_id=f"<{mid}>").messages] == ["1BC8D2108B3"]
    assert [m.queue_id for m in message_search(SYSTEM, queue_id="1D8592108B4").messages] == ["1D8592108B4"]
    assert {m.queue_id for m in message_search(SYSTEM, status="expired").messages} == {"1D8592108B4", "1EE5C2108B6"}


def test_search_by_address_lists_the_refusals_at_smtp_too():
    ingest_file(DMS)
    found = message_search(SYSTEM, to="x@elsewhere.example")
    assert found.messages == []
    assert [(r.stage, r.code, r.client) for r in found.rejections] == [("RCPT", 554, "unknown[203.0.113.10]")]


def test_a_message_refused_at_content_tells_it_in_its_story():
    ingest_file(DMS)
    story = message_story(SYSTEM, MailMessage.objects.get(queue_id="AB7B8C9DAE"))
    assert story.attempts == []
    assert [(r.stage, r.reply) for r in story.rejections] == [("header", "Message content rejected")]
    assert story.final.state == "rejected"


def test_search_respects_the_range_and_the_limit():
    ingest_file(DMS)
    found = message_search(SYSTEM, since=datetime(2026, 12, 11, tzinfo=UTC), limit=1)
    assert [m.queue_id for m in found.messages] == ["BC8C9DAEBF"] and found.truncated


@pytest.mark.parametrize(
    "filters, field",
    [
        ({"to": "erin"}, "to"),
        ({"to": "a b@example.com"}, "to"),
        ({"sender": "@example.com"}, "from"),
        ({"queue_id": "not a qid"}, "queue_id"),
        ({"message_id": "two words"}, "message_id"),
        ({"status": "lost"}, "status"),
        ({"limit": 0}, "limit"),
    ],
)
def test_bad_search_input_is_refused_naming_the_filter(filters, field):
    with pytest.raises(ValidationError) as caught:
        message_search(SYSTEM, **filters)
    assert list(caught.value.message_dict) == [field]


# --- who may read -----------------------------------------------------------------------------------------------


def test_only_staff_allowed_to_view_mail_messages_may_read_the_traffic():
    ingest_file(DMS)
    person = UserFactory(is_staff=True)
    for read in (
        lambda: everything_for(person),
        lambda: message_search(person, to="erin@example.net"),
        lambda: traffic_series(person),
    ):
        with pytest.raises(ValidationError) as caught:
            read()
        assert "monitoring.view_mailmessage" in str(caught.value)
    person.user_permissions.add(Permission.objects.get(codename="view_mailmessage"))
    person = type(person).objects.get(pk=person.pk)  # permissions are cached on the instance
    assert everything_for(person).received == 6
    assert traffic_stats.may_view_traffic(person)


def everything_for(actor):
    return traffic_totals(actor, since=EVER, until=FAR)


# --- pflogsumm's rules, as plain functions (monitoring.maillog.counting) ---------------------------------------


@pytest.mark.parametrize(
    "program, received",
    [
        ("postfix/smtpd", True),
        ("postfix/submission/smtpd", True),
        ("postfix/smtps/smtpd", True),
        ("postfix/pickup", True),
        ("postfix/submissions/smtpd", False),  # DMS's port 465: pflogsumm reads the command "submissions/smtpd"
        ("postfix/smtpd-amavis/smtpd", False),
        ("", False),
    ],
)
def test_what_pflogsumm_counts_as_received(program, received):
    assert counting.is_received(program) is received


@pytest.mark.parametrize(
    "program, action, stage, kind",
    [
        ("postfix/smtpd", "reject", "RCPT", counting.REJECTED),
        ("postfix/submission/smtpd", "reject", "RCPT", counting.REJECTED),
        ("postfix/postscreen", "reject", "postscreen", counting.REJECTED),
        ("postfix/smtpd", "reject_warning", "RCPT", counting.REJECT_WARNING),
        ("postfix/smtpd", "milter-reject", "END-OF-MESSAGE", None),
        ("postfix/smtpd", "warn", "RCPT", None),
        ("postfix/submissions/smtpd", "reject", "RCPT", None),
        ("postfix/cleanup", "reject", "header", counting.REJECTED),
        ("postfix/cleanup", "milter-reject", "END-OF-MESSAGE", counting.REJECTED),
        ("postfix/cleanup", "warning", "body", counting.REJECT_WARNING),
        ("postfix/sender-cleanup/cleanup", "reject", "header", None),
        ("postfix/smtpd", "hold", "RCPT", counting.HELD),
        ("postfix/smtpd", "discard", "RCPT", counting.DISCARDED),
        ("postfix/cleanup", "hold", "header", counting.HELD),
        ("postfix/cleanup", "discard", "body", counting.DISCARDED),
        ("postfix/cleanup", "milter-hold", "END-OF-MESSAGE", counting.HELD),
        ("postfix/cleanup", "milter-discard", "END-OF-MESSAGE", counting.DISCARDED),
        ("postfix/smtpd", "milter-hold", "END-OF-MESSAGE", None),
    ],
)
def test_what_pflogsumm_counts_as_rejected(program, action, stage, kind):
    assert counting.rejection_kind(program, action, stage) == kind


@pytest.mark.parametrize(
    "sender, received_by, host, ip, domain",
    [
        ("Ann@Example.COM", "postfix/smtpd", "mx.example.net", "203.0.113.5", "example.com"),
        ("", "postfix/smtpd", "mail-wr1-f54.google.com", "209.85.221.54", "google.com"),
        ("", "postfix/smtpd", "", "203.0.113.9", "203.0.113.9"),
        ("", "postfix/smtpd", "mx1.example.co.uk", "203.0.113.9", "example.co.uk"),
        ("root", "postfix/pickup", "", None, "root"),
    ],
)
def test_the_sending_host_or_domain_pflogsumm_counts(sender, received_by, host, ip, domain):
    assert counting.sending_domain(sender, received_by, host, ip or "") == domain


@pytest.mark.parametrize(
    "relay, recipient, site",
    [
        ("gmail-smtp-in.l.google.com[142.250.102.27]:25", "a@gmail.com", "google.com"),
        ("aspmx.l.google.com[142.250.102.27]:25", "a@workspace.example", "google.com"),
        ("none", "a@Gone.Example", "gone.example"),
        ("127.0.0.1[127.0.0.1]:25", "a@example.net", "example.net"),
        # A country code's domain is the provider's two labels (web.de's MX hosts are one site)...
        ("mx-ha03.web.de[212.227.15.9]:25", "a@web.de", "web.de"),
        ("mx01.posteo.de[89.146.220.134]:25", "a@posteo.de", "posteo.de"),
        # ... unless registered under a generic second level.
        ("mx1.example.co.uk[192.0.2.1]:25", "a@example.co.uk", "example.co.uk"),
        ("mx.mail.example.com.au[192.0.2.2]:25", "a@example.com.au", "example.com.au"),
    ],
)
def test_the_remote_site_of_an_attempt(relay, recipient, site):
    assert counting.remote_domain(relay, recipient) == site


def test_a_reply_pattern_leaves_out_addresses_ips_and_tracking_ids():
    one = "host mx[192.0.2.1] said: 550 5.7.1 <a@x.example> blocked [192.0.2.10] id a640c23a62f3a-a7a3b5e2f1asi12"
    two = "host mx[192.0.2.2] said: 550 5.7.1 <b@x.example> blocked [192.0.2.11] id b750d34b73g4b-b8b4c6f3g2bsj34"
    assert counting.reply_pattern(one) == counting.reply_pattern(two) == "550 5.7.1 <...> blocked [...] id ..."


def test_the_periodic_tasks_roll_up_and_prune_and_say_what_they_did(settings):
    settings.TRAFFIC_DAYS = 30
    from monitoring.tasks import prune_traffic, roll_up_traffic

    with time_machine.travel(datetime(2026, 12, 7, 0, 5, tzinfo=UTC), tick=False):
        ingest_file(DMS)
        assert roll_up_traffic() == ("rolled up 2 day(s) (2026-12-06 to 2026-12-07): 21 hourly, 60 daily rows")
    with time_machine.travel(datetime(2027, 1, 6, tzinfo=UTC), tick=False):
        assert prune_traffic().startswith("deleted 6 message(s), 7 delivery attempt(s), 3 rejection(s)")


def test_two_log_sources_add_up_their_deferred_messages_as_their_other_figures():
    ingest_file(DMS)
    one = everything().as_dict()
    ingest_file(DMS, source="mx2")  # another host's log: its queue ids are its own, even where they look the same
    both = everything().as_dict()
    assert one["deferred"] > 0
    assert (both["deferred"], both["deferrals"], both["received"]) == (
        2 * one["deferred"],
        2 * one["deferrals"],
        2 * one["received"],
    )
