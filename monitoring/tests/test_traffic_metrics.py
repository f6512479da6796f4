"""The mail traffic on /metrics (read with prometheus_client's own parser): dockspace_mail_messages_total by direction
and status and the delivery-delay histogram follow the stored log, and never go down when the raw rows and later
the rollups are pruned."""

from datetime import timedelta

import pytest
import time_machine

from monitoring import traffic_rollups
from monitoring.models import DeliveryAttempt, MailMessage
from monitoring.tests.test_metrics import scrape, value
from monitoring.tests.traffic_logs import AFTER_SAMPLES, DMS, ingest_file, ingest_lines, line
from monitoring.traffic_models import TrafficHourly

pytestmark = pytest.mark.django_db

STATUSES = ("accepted", "sent", "deferred", "bounced", "expired", "rejected")


def messages(families):
    return {
        (direction, status): value(families, "dockspace_mail_messages", direction=direction, status=status)
        for direction in ("in", "out", "unknown")
        for status in STATUSES
    }


def delays(families, destination):
    family = families["dockspace_mail_delivery_delay_seconds"]
    return {
        (s.name.rsplit("_", 1)[1], s.labels.get("le")): s.value
        for s in family.samples
        if s.labels["destination"] == destination
    }


def test_the_dms_sample_as_counters_and_delay_histograms():
    with time_machine.travel(AFTER_SAMPLES, tick=False):
        ingest_file(DMS)
        families = scrape()
    counted = messages(families)
    assert counted["out", "accepted"] == 4 and counted["in", "accepted"] == 2
    assert counted["out", "sent"] == 5 and counted["in", "sent"] == 1
    assert (counted["out", "deferred"], counted["out", "bounced"], counted["out", "expired"]) == (2, 1, 1)
    assert counted["in", "rejected"] == 3
    assert families["dockspace_mail_messages"].type == "counter"
    remote = delays(families, "remote")  # 1.9 s twice (4A1B) and 303 s (greylisted, then sent)
    assert remote["count", None] == 3 and remote["sum", None] == pytest.approx(306.8)
    assert (remote["bucket", "1.0"], remote["bucket", "5.0"], remote["bucket", "300.0"]) == (0, 2, 2)
    assert (remote["bucket", "900.0"], remote["bucket", "+Inf"]) == (3, 3)
    local = delays(families, "local")
    assert local["count", None] == 3 and local["bucket", "1.0"] == 3


def test_new_lines_count_at_once_between_rollups():
    with time_machine.travel(AFTER_SAMPLES, tick=False):
        ingest_file(DMS)
        traffic_rollups.traffic_rollup()
    later = AFTER_SAMPLES + timedelta(hours=2)
    with time_machine.travel(later, tick=False):
        ingest_lines(
            [line(later - timedelta(minutes=5), "postfix/smtpd", "NOQUEUE: reject: RCPT from unknown[203.0.113.9]: "
                  "554 5.7.1 <x@elsewhere.example>: Relay access denied; from=<s@example.biz> to=<x@elsewhere.example> "
                  "proto=ESMTP helo=<ylmf-pc>")]
        )  # fmt: skip
        assert messages(scrape())["in", "rejected"] == 4


def test_the_counters_never_go_down_when_rows_are_pruned(settings):
    settings.TRAFFIC_DAYS = 30
    with time_machine.travel(AFTER_SAMPLES, tick=False):
        ingest_file(DMS)
        families = scrape()
        before, before_delays = messages(families), delays(families, "remote")
        traffic_rollups.traffic_rollup()
        assert messages(scrape()) == before
    with time_machine.travel(AFTER_SAMPLES + timedelta(days=31), tick=False):
        traffic_rollups.traffic_prune()
        assert not MailMessage.objects.exists() and not DeliveryAttempt.objects.exists()
        families = scrape()
        assert messages(families) == before and delays(families, "remote") == before_delays
    with time_machine.travel(AFTER_SAMPLES + timedelta(days=95), tick=False):
        traffic_rollups.traffic_prune()
        assert not TrafficHourly.objects.exists()
        families = scrape()
        assert messages(families) == before and delays(families, "remote") == before_delays
