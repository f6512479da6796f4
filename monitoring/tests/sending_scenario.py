"""One day of sending for the rate tests (the card, the selectors, the alert rules), from real rows: log lines
ingested, bounces and complaints read from reports.

In the 24 hours before NOW: IP_A sent alice's 300 recipients (9 refused 5.1.1, 3 with a full mailbox) and
news@example.org's 1000 (two complained); IP_B bob's 250 (30 refused, one more bounced later by mail); IP_C carol's
40 (20 refused: too few recipients to judge). Three days before, IP_A sent alice's 500 more, all delivered."""

from datetime import timedelta

from monitoring.tests.feedback_traffic import IP_A, IP_B, NOW
from monitoring.tests.sending_volume import complaint, late_bounce, mail_from, read_at, recipients, send
from monitoring.tests.traffic_logs import queue_id

IP_C = "192.0.2.12"


def a_day_of_sending():
    send(
        mail_from(IP_A, NOW - timedelta(hours=2), queue_id(1), to=recipients("a", 300), hard=9, soft=3),
        mail_from(IP_A, NOW - timedelta(hours=5), queue_id(2), sender="news@example.org", to=recipients("n", 1000)),
        mail_from(IP_A, NOW - timedelta(days=3), queue_id(3), to=recipients("o", 500)),
        mail_from(
            IP_B, NOW - timedelta(hours=3), queue_id(4), sender="bob@example.com", to=recipients("b", 250), hard=30
        ),  # fmt: skip
        mail_from(
            IP_C, NOW - timedelta(hours=1), queue_id(5), sender="carol@example.com", to=recipients("c", 40), hard=20
        ),  # fmt: skip
    )
    read_at(
        NOW - timedelta(hours=1),
        complaint(queue_id(2), "n0@example.net", IP_A),
        complaint(queue_id(2), "n1@example.net", IP_A),
    )
    read_at(NOW - timedelta(minutes=30), late_bounce(queue_id(4), "b40@example.net", IP_B))
