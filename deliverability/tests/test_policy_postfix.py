"""The policy service behind a real Postfix configured as DMS is (monitoring/tests/postfix_instance.py) with the
lines Dockspace writes for it: a person's submission over the daily limit gets the 452 that names the limit; two
WARMING IPs share the pool's mail by their hourly caps (each message leaves from the IP the service chose); when
both are full the next message is accepted, held in Postfix's queue (not bounced) and, once its hour comes, released
and delivered from the IP whose room was reserved for it."""

import datetime as dt

import pytest
import time_machine

from deliverability import policy_rules as rules
from deliverability.held_mail import held_messages, release_due
from deliverability.policy_counters import FileCounters
from deliverability.postfix_policy import HOLD_CONTEXT, policy_check
from deliverability.tests.policy_client import policy_server
from monitoring.tests import postfix_instance
from monitoring.tests.postfix_instance import POOL_IP, POOL_TRANSPORT, POSTSUPER, PostfixInstance

pytestmark = [
    pytest.mark.skipif(bool(postfix_instance.SKIP_REASON), reason=postfix_instance.SKIP_REASON or ""),
    pytest.mark.django_db,
]

SECOND_IP, SECOND_TRANSPORT = "127.0.0.3", "out-127-0-0-3"
SENDER = "carol@example.org"  # a mailbox of the pooled domain in the Postfix instance
NOON = dt.datetime(2026, 12, 7, 12, 10, tzinfo=dt.UTC)


class TwoIpPostfix(PostfixInstance):
    """The instance with a second pooled transport, and Dockspace's policy checks where postfix-main.cf and
    user-patches.sh put them."""

    def __init__(self, policy_port, **kw):
        self.policy = f"127.0.0.1:{policy_port}"
        super().__init__(**kw)

    def main_cf(self):
        values = super().main_cf()
        check = policy_check(self.policy)
        values["smtpd_recipient_restrictions"] = f"{check}, {values['smtpd_recipient_restrictions']}"
        values["smtpd_data_restrictions"] = f"{check}, {values['smtpd_data_restrictions']}"
        values["smtpd_end_of_data_restrictions"] = f"{check}, {policy_check(self.policy, HOLD_CONTEXT)}"
        # No DNS here: a FILTER with an empty next hop goes where the recipient domain's MX would be.
        values["default_filter_nexthop"] = f"[127.0.0.1]:{self.remote_port}"
        return values

    def master_cf(self):
        return super().master_cf() + (
            f"{SECOND_TRANSPORT} unix - - n - - smtp\n"
            f"  -o syslog_name=postfix/{SECOND_TRANSPORT} -o smtp_bind_address={SECOND_IP} "
            "-o smtp_helo_name=out3.example.org\n"
        )


def config():
    pooled = rules.DomainPolicy("example.org", tier="warm", daily_limit=5, pool="bulk")
    return rules.PolicyConfig(
        senders={SENDER: rules.Sender(SENDER, pooled)},
        local_domains=frozenset({"example.com", "example.org"}),
        pools={
            "bulk": (
                rules.RouteIp(POOL_IP, POOL_TRANSPORT, 1, "warming", daily_cap=100, hourly_cap=2),
                rules.RouteIp(SECOND_IP, SECOND_TRANSPORT, 1, "warming", daily_cap=100, hourly_cap=2),
            )
        },
    )


def senders_ips(pf):
    return sorted(message.peer_ip for message in pf.remote.received)


@time_machine.travel(NOON, tick=False)
def test_warming_ips_share_by_caps_a_full_pool_holds_without_loss_and_the_limit_names_itself(tmp_path):
    counters = FileCounters(tmp_path / "counters.sqlite3")
    with policy_server(counters, config=config()) as server, TwoIpPostfix(server.port) as pf:
        for n in range(4):
            sent = pf.send(SENDER, [f"friend{n}@example.net"], sasl_user=SENDER)
            assert sent.data_reply[0] == 250, sent
        pf.wait_for_log(r"status=sent", count=4)
        assert senders_ips(pf) == [POOL_IP, POOL_IP, SECOND_IP, SECOND_IP]

        held = pf.send(SENDER, ["friend4@example.net"], sasl_user=SENDER)
        assert held.data_reply[0] == 250 and held.queue_id
        pf.wait_for_log(rf"{held.queue_id}: hold: .*waiting for warmup room on {POOL_IP} until 2026-12-07 13:00 UTC")
        assert "!" in pf.queue().split(held.queue_id)[1][:3]  # postqueue marks a held message with "!"
        assert [m.queue_id for m in held_messages(counters)] == [held.queue_id]

        over = pf.send(SENDER, ["friend5@example.net"], sasl_user=SENDER)
        assert over.refused == {
            "friend5@example.net": (
                452,
                "4.5.3 <friend5@example.net>: Recipient address rejected: carol@example.org sent to 5 of 5 "
                "recipients allowed today; the limit resets at 00:00 UTC",
            )
        }

        assert release_due(counters, f"{POSTSUPER} -c {pf.config_dir} -H", NOON) == []  # not its time yet
        at_one = dt.datetime(2026, 12, 7, 13, 0, 5, tzinfo=dt.UTC)
        assert release_due(counters, f"{POSTSUPER} -c {pf.config_dir} -H", at_one) == [(held.queue_id, "released")]
        pf.flush()
        pf.wait_for_log(rf"{held.queue_id}: .*status=sent")

        assert senders_ips(pf) == [POOL_IP, POOL_IP, POOL_IP, SECOND_IP, SECOND_IP]
        assert held_messages(counters) == []
        assert "status=bounced" not in pf.dms_log()
    counters.close()


@time_machine.travel(NOON, tick=False)
def test_the_operator_sees_the_held_mail_with_its_release_time(tmp_path, settings):
    import json

    from deliverability.tests.factories import signed_in, staff_with
    from mail.tests.factories import run

    settings.DATA_DIR = tmp_path
    settings.REDIS_URL = ""
    counters = FileCounters(tmp_path / "policy-counters.sqlite3")
    with policy_server(counters, config=config()) as server, TwoIpPostfix(server.port) as pf:
        for n in range(5):
            sent = pf.send(SENDER, [f"friend{n}@example.net"], sasl_user=SENDER)
        pf.wait_for_log(rf"{sent.queue_id}: hold: ")

        listed = json.loads(run("send_limits", "held", "--json"))
        page = signed_in(staff_with("mail.view_mailbox", "deliverability.view_sendingip")).get(
            "/admin/deliverability/send-limits/"
        )
    counters.close()

    assert listed == [
        {
            "queue_id": sent.queue_id,
            "release_at": "2026-12-07T13:00:00+00:00",
            "sender": SENDER,
            "pool": "bulk",
            "ip": POOL_IP,
            "recipients": 1,
        }
    ]
    held = page.content.decode()
    held = held[held.index('id="send-limits-held"') :]
    assert sent.queue_id in held and "2026-12-07 13:00" in held and POOL_IP in held
    assert "DOCKSPACE_POLICY_RELEASE_COMMAND is not set" in page.content.decode()


@time_machine.travel(NOON, tick=False)
def test_a_message_with_a_local_recipient_counts_against_the_caps_and_waits_like_the_others(tmp_path):
    caps = config()
    one_each = {
        "bulk": tuple(
            rules.RouteIp(ip.address, ip.transport, ip.weight, ip.state, daily_cap=100, hourly_cap=1)
            for ip in caps.pools["bulk"]
        )
    }
    counters = FileCounters(tmp_path / "counters.sqlite3")
    with (
        policy_server(counters, config=rules.PolicyConfig(**{**caps.__dict__, "pools": one_each})) as server,
        TwoIpPostfix(server.port) as pf,
    ):
        mixed = pf.send(SENDER, ["friend0@example.net", "alice@example.com"], sasl_user=SENDER)
        remote = pf.send(SENDER, ["friend1@example.net"], sasl_user=SENDER)
        pf.wait_for_log(r"status=sent", count=3)
        held = pf.send(SENDER, ["friend2@example.net", "alice@example.com"], sasl_user=SENDER)
        pf.wait_for_log(rf"{held.queue_id}: hold: ")

        assert mixed.data_reply[0] == remote.data_reply[0] == held.data_reply[0] == 250
        # The mixed one took the pool's rotation (the harness routes example.org to 127.0.0.2) and one IP's
        # room; the remote one was routed to the IP that still had room.
        assert senders_ips(pf) == [POOL_IP, SECOND_IP]
        assert [m.queue_id for m in held_messages(counters)] == [held.queue_id]
    counters.close()
