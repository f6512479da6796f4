"""Postfix going on without the policy service: smtpd's "problem talking to server" lines read from the mail log,
counted per log source, server and hour, shown on /metrics and alerted on ("Postfix could not reach the policy
service": fires while such lines came within 10 minutes, resolves after 10 quiet minutes), with lines from the
real Postfix 3.7 and one proof on a running Postfix whose policy service is down (the mail flows, the alert fires)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from monitoring import alert_services
from monitoring.alert_models import Alert
from monitoring.maillog.events import Other, PolicyUnreachable
from monitoring.maillog.parse import parse_line, parse_lines
from monitoring.tests import postfix_instance
from monitoring.tests.postfix_instance import PostfixInstance, free_port
from monitoring.tests.test_metrics import scrape, value
from monitoring.tests.traffic_logs import ingest_lines, line
from monitoring.traffic_models import PolicyUnreachableHourly

KIND = "monitoring.policy_unreachable"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
# Seen on a real Postfix 3.7 whose policy service was down (util/attr_clnt.c, util/auto_clnt.c).
REFUSED = (
    "2026-12-07T04:51:12.164696+00:00 mail postfix/submission/smtpd[5440]: warning: connect to 127.0.0.1:48825: "
    "Connection refused",
    "2026-12-07T04:51:12.164696+00:00 mail postfix/submission/smtpd[5440]: warning: problem talking to server "
    "127.0.0.1:48825: Connection refused",
)


def trouble(at, server="127.0.0.1:10040", reason="Connection refused", program="postfix/submission/smtpd"):
    return line(at, program, f"warning: problem talking to server {server}: {reason}")


# --- the parser ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "server", "reason"),
    [
        (REFUSED[1], "127.0.0.1:48825", "Connection refused"),
        (trouble(NOW, "policy:10040", "Connection timed out"), "policy:10040", "Connection timed out"),
        (trouble(NOW, "[2001:db8::5]:10040", "Success"), "[2001:db8::5]:10040", "Success"),
        (
            trouble(NOW, "private/policyd-spf", "No such file or directory"),
            "private/policyd-spf",
            "No such file or directory",
        ),
        (trouble(NOW, program="postfix/smtpd"), "127.0.0.1:10040", "Connection refused"),
        (trouble(NOW, program="postfix/submissions/smtpd"), "127.0.0.1:10040", "Connection refused"),
    ],
)
def test_a_policy_query_without_an_answer_is_read_with_its_server_and_reason(text, server, reason):
    event = parse_line(text)
    assert type(event) is PolicyUnreachable
    assert (event.server, event.reason, event.line.program.rsplit("/", 1)[-1]) == (server, reason, "smtpd")
    [(batched, raw)] = parse_lines([text], reference=NOW).pairs
    assert (batched, raw) == (event, text)


@pytest.mark.parametrize(
    "text",
    [
        REFUSED[0],  # the connect line: one per try, the "problem talking" line says the same
        trouble(NOW, "private/tlsmgr"),  # Postfix's own services are not policy services
        trouble(NOW, "private/anvil"),
        line(NOW, "postfix/smtpd", "warning: problem talking to server 127.0.0.1:10040"),  # no reason: not this
        line(NOW, "postfix/smtp", "warning: problem talking to server 127.0.0.1:10040: Connection refused"),
        line(NOW, "postfix/smtpd", "ABCDEF1234: problem talking to server 127.0.0.1:10040: Connection refused"),
        line(NOW, "postfix/smtpd", "warning: unknown[127.0.0.10]: SASL PLAIN authentication failed: x"),
    ],
)
def test_other_warnings_are_not_taken_for_it(text):
    assert type(parse_line(text)) is Other
    assert parse_lines([text], reference=NOW).pairs == []


def test_classic_timestamps_are_read_too():
    event = parse_line(
        "Dec  7 04:51:12 mail postfix/smtpd[5440]: warning: problem talking to server 127.0.0.1:10040: Success",
        year=2026,
    )
    assert (type(event), event.server, event.line.at) == (
        PolicyUnreachable,
        "127.0.0.1:10040",
        datetime(2026, 12, 7, 4, 51, 12, tzinfo=UTC),
    )


# --- stored per log source, server and hour --------------------------------------------------------------------


def counted():
    return {
        (row.source.name, row.server, row.hour.hour): (row.count, row.last_at, row.last_reason)
        for row in PolicyUnreachableHourly.objects.select_related("source")
    }


@pytest.mark.django_db
def test_each_line_counts_once_per_log_source_server_and_hour_even_read_twice():
    at = NOW.replace(hour=11, minute=58)
    lines = [
        *REFUSED,
        trouble(at),
        trouble(at + timedelta(seconds=1), reason="Connection timed out"),
        trouble(at + timedelta(minutes=3)),  # the next hour
        trouble(at + timedelta(minutes=4), "policy2:10040"),
        line(at, "postfix/smtpd", "warning: problem talking to server private/tlsmgr: Connection refused"),
    ]
    result = ingest_lines(lines)
    ingest_lines(lines[2:], source="mx2")
    assert result.policy_unreachable == 5
    assert result.events["PolicyUnreachable"] == 5
    first = datetime(2026, 12, 7, 4, 51, 12, 164696, tzinfo=UTC)
    expected = {
        ("local", "127.0.0.1:48825", 4): (1, first, "Connection refused"),
        ("local", "127.0.0.1:10040", 11): (2, at + timedelta(seconds=1), "Connection timed out"),
        ("local", "127.0.0.1:10040", 12): (1, at + timedelta(minutes=3), "Connection refused"),
        ("local", "policy2:10040", 12): (1, at + timedelta(minutes=4), "Connection refused"),
        ("mx2", "127.0.0.1:10040", 11): (2, at + timedelta(seconds=1), "Connection timed out"),
        ("mx2", "127.0.0.1:10040", 12): (1, at + timedelta(minutes=3), "Connection refused"),
        ("mx2", "policy2:10040", 12): (1, at + timedelta(minutes=4), "Connection refused"),
    }
    assert counted() == expected

    again = ingest_lines(lines)  # an archive of the same lines ingested after the follower read them
    assert again.policy_unreachable == 0
    assert counted() == expected

    later = ingest_lines([trouble(at + timedelta(minutes=5))])  # the follower goes on
    assert later.policy_unreachable == 1
    assert counted()["local", "127.0.0.1:10040", 12][0] == 2


@pytest.mark.django_db
def test_the_lines_do_not_disturb_the_messages_around_them():
    from monitoring.models import MailMessage
    from monitoring.tests.traffic_logs import attempt, removed, submission

    lines = [
        *submission(NOW, "4ABC123DEF", "alice@example.com", ["bob@example.net"]),
        trouble(NOW + timedelta(milliseconds=10)),
        attempt(NOW + timedelta(seconds=1), "4ABC123DEF", "bob@example.net", "sent"),
        removed(NOW + timedelta(seconds=2), "4ABC123DEF"),
    ]
    ingest_lines(lines)
    message = MailMessage.objects.get()
    assert (message.sender, message.state) == ("alice@example.com", "delivered")
    assert PolicyUnreachableHourly.objects.get().count == 1


# --- /metrics --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_count_the_lines_ever_and_tell_when_the_latest_came():
    families = scrape()
    assert families["dockspace_postfix_policy_unreachable"].samples == []
    at = NOW - timedelta(hours=3)
    ingest_lines([trouble(at), trouble(at + timedelta(hours=2)), trouble(at, "policy2:10040")])
    ingest_lines([trouble(at + timedelta(seconds=5))], source="mx2")
    families = scrape()
    name = "dockspace_postfix_policy_unreachable"
    assert value(families, name, source="local", server="127.0.0.1:10040") == 2
    assert value(families, name, source="local", server="policy2:10040") == 1
    assert value(families, name, source="mx2", server="127.0.0.1:10040") == 1
    last = "dockspace_postfix_policy_unreachable_last_timestamp_seconds"
    assert value(families, last, source="local", server="127.0.0.1:10040") == (at + timedelta(hours=2)).timestamp()
    assert value(families, last, source="mx2", server="127.0.0.1:10040") == (at + timedelta(seconds=5)).timestamp()


# --- the alert -------------------------------------------------------------------------------------------------


def evaluate(at):
    with time_machine.travel(at, tick=False):
        alert_services.alerts_evaluate(now=at)


def alerts():
    return {a.subject: a for a in Alert.objects.filter(rule__kind=KIND)}


@pytest.mark.django_db
def test_the_alert_fires_naming_the_server_and_count_and_resolves_after_ten_quiet_minutes():
    start = NOW - timedelta(minutes=5)
    ingest_lines([trouble(start + timedelta(seconds=s)) for s in (0, 1, 30, 31)])
    evaluate(NOW)
    alert = alerts()["local: 127.0.0.1:10040"]
    assert (alert.state, alert.value) == (Alert.FIRING, 4)
    assert "could not reach the policy service 127.0.0.1:10040 4 time(s) since 11:00 UTC" in alert.summary
    assert "the latest at 11:55:31 UTC (Connection refused)" in alert.summary
    assert "Start the policy process" in alert.summary and "DOCKSPACE_POLICY_SERVICE" in alert.summary

    evaluate(NOW + timedelta(minutes=5, seconds=30))  # 9:59 after the last line: still firing
    assert alerts()["local: 127.0.0.1:10040"].state == Alert.FIRING

    evaluate(NOW + timedelta(minutes=6))  # 10:29 quiet
    alert = alerts()["local: 127.0.0.1:10040"]
    assert alert.state == Alert.RESOLVED
    assert "none for 10 minutes" in alert.summary


@pytest.mark.django_db
def test_lines_older_than_ten_minutes_do_not_fire_and_other_servers_have_their_own_alert():
    ingest_lines([trouble(NOW - timedelta(minutes=11))])
    ingest_lines([trouble(NOW - timedelta(minutes=2), "policy2:10040")], source="mx2")
    evaluate(NOW)
    found = alerts()
    assert set(found) == {"mx2: policy2:10040"}  # the quiet one never fired: no alert row
    assert found["mx2: policy2:10040"].state == Alert.FIRING


@pytest.mark.django_db
def test_no_line_no_alert():
    evaluate(NOW)
    assert alerts() == {}


# --- a real Postfix whose policy service is down ---------------------------------------------------------------


class PolicyDownPostfix(PostfixInstance):
    """The instance with Dockspace's policy check first in smtpd_recipient_restrictions, as user-patches.sh puts it,
    pointing at a port where nothing listens."""

    def __init__(self, policy_port, **kw):
        self.policy = f"127.0.0.1:{policy_port}"
        super().__init__(**kw)

    def main_cf(self):
        values = super().main_cf()
        # What deliverability.postfix_policy.policy_check writes (monitoring does not import deliverability).
        check = f"check_policy_service {{ inet:{self.policy}, timeout=5s, default_action=DUNNO }}"
        values["smtpd_recipient_restrictions"] = f"{check}, {values['smtpd_recipient_restrictions']}"
        values["smtpd_policy_service_retry_delay"] = "1s"
        return values


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(bool(postfix_instance.SKIP_REASON), reason=postfix_instance.SKIP_REASON or "")
def test_with_the_policy_service_down_mail_flows_and_the_alert_fires():
    port = free_port()  # bound and closed again: nothing listens there
    with PolicyDownPostfix(port) as pf:
        sent = pf.send("alice@example.com", ["friend@example.net"], sasl_user="alice@example.com")
        assert sent.queue_id and sent.data_reply[0] == 250  # accepted: default_action=DUNNO
        pf.wait_for_log(rf"{sent.queue_id}: to=<friend@example.net>.*status=sent")
        lines = pf.log_lines()
    talking = [text for text in lines if "problem talking to server" in text]
    assert talking and all(f"problem talking to server 127.0.0.1:{port}: Connection refused" in t for t in talking)
    result = ingest_lines(lines)
    assert result.policy_unreachable == len(talking)
    latest = max(parse_line(text).line.at for text in talking)
    evaluate(latest + timedelta(minutes=1))
    alert = alerts()[f"local: 127.0.0.1:{port}"]
    assert (alert.state, alert.value) == (Alert.FIRING, len(talking))
