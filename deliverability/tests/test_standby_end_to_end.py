"""The standby flow end to end (issue "Sending reputation", Tests): a real NSD serving a standby blocklist that lists
one of a pool's two ACTIVE IPs, a real Celery worker and beat running the blocklist sweep and the alert evaluation
every second or two. The IP goes RESTING (audited), the worker's next DMS sync drops its transport from
postfix-main.cf, "Listed on a blocklist" fires to a webhook (signature verified by the receiver); the list delists
it, the alert resolves, and the IP stays RESTING (it comes back only through quarantine release or an operator).

It uses monitoring's alert models and webhook receiver: the one deliverability test module allowed to (pyproject's
layers contract, ignore_imports)."""

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from accounts.models import AuditEvent
from deliverability.alert_kinds import DNSBL_LISTED
from deliverability.models import SendingIp
from deliverability.postfix_transports import MAIN_PATH, parse_main
from deliverability.tests.dnsbl_lists import IP_ZONE, make_list, only_test_lists, serve_ip_list
from deliverability.tests.factories import make_ip, make_pool
from dockspace.tests.celery_processes import celery_running, wait_for
from mail.tests.factories import make_domain, use_temp_dms_dir
from monitoring.alert_models import Alert, AlertRule
from monitoring.alert_services import alert_rules_install
from monitoring.standard_webhooks import generate_secret
from monitoring.tests.factories import webhook_channel
from monitoring.tests.stand_ins import LOOPBACK_ALLOWED, webhook_receiver

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]

LISTED_IP, OTHER_IP = "192.0.2.10", "192.0.2.11"
SUBJECT = f"{LISTED_IP} on {IP_ZONE}"


def every(seconds):
    schedule, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
    return schedule


def rotation(dms_dir):
    """The pool rotation in postfix-main.cf as the last sync wrote it ("" before any)."""
    path = dms_dir / MAIN_PATH
    if not path.exists():
        return ""
    entries, problems = parse_main(path.read_text(), MAIN_PATH)
    assert problems == []
    return dict(entries).get("sender_dependent_default_transport_maps", "")


def test_a_standby_listing_rests_the_ip_drops_its_transport_and_alerts_until_delisted(dns_server, settings, tmp_path):
    dms_dir = use_temp_dms_dir(settings, tmp_path)
    only_test_lists()
    serve_ip_list(dns_server, {LISTED_IP: "127.0.0.2"})
    make_list()  # standby, 127.0.0.2 = SBL
    pool = make_pool("bulk", domains=[make_domain("a.example")])
    make_ip(LISTED_IP, pool=pool, state=SendingIp.ACTIVE)
    make_ip(OTHER_IP, pool=pool, state=SendingIp.ACTIVE)
    # Positive control: both transports are in rotation before the worker runs (the test's own sync wrote it).
    assert "out-192-0-2-10" in rotation(dms_dir) and "out-192-0-2-11" in rotation(dms_dir)

    alert_rules_install()
    AlertRule.objects.exclude(kind=DNSBL_LISTED).update(is_enabled=False)
    call_command("install_periodic_tasks")
    beat = ("deliverability.dnsbl_sweep", "monitoring.evaluate_alerts")
    PeriodicTask.objects.exclude(task__in=beat).update(enabled=False)
    PeriodicTask.objects.filter(task="deliverability.dnsbl_sweep").update(interval=every(2), expires=None)
    PeriodicTask.objects.filter(task="monitoring.evaluate_alerts").update(interval=every(1), expires=None)
    secret = generate_secret()
    env = {
        "DOCKSPACE_DNS_RESOLVER": f"127.0.0.1:{dns_server.port}",
        "DOCKSPACE_DNS_TIMEOUT": "2",
        "DOCKSPACE_DMS_DIR": str(dms_dir),
        "DOCKSPACE_DMS_HISTORY_DIR": str(settings.DMS_HISTORY_DIR),
        "DOCKSPACE_DMS_SYNC_DELAY": "0",
        **LOOPBACK_ALLOWED,  # the webhook receiver
    }
    with webhook_receiver(secret) as receiver, celery_running(tmp_path, "worker", "beat", **env) as celery:
        AlertRule.objects.filter(kind=DNSBL_LISTED).get().channels.set(
            [webhook_channel(receiver.url + "/dockspace", secret, is_default=False)]
        )

        def webhooks(kind):
            return [r for r in receiver.received if r["payload"] and r["payload"]["type"] == kind]

        def state(address):
            return SendingIp.objects.get(address=address).state

        rested = wait_for(lambda: state(LISTED_IP) == SendingIp.RESTING, 60)
        assert rested, celery.log()[-3000:]
        dropped = wait_for(lambda: "out-192-0-2-10" not in rotation(dms_dir), 30)
        assert dropped, (rotation(dms_dir), celery.log()[-3000:])
        fired = wait_for(lambda: webhooks("alert.fired"), 30)
        assert fired, (receiver.received, celery.log()[-3000:])

        serve_ip_list(dns_server)  # delisted: the IP's name is NXDOMAIN now (NSD restarts on the same port)
        resolved = wait_for(lambda: webhooks("alert.resolved"), 60)
        assert resolved, (receiver.received, celery.log()[-3000:])
        worker_log = celery.log()

    assert all(r["error"] == "" and r["path"] == "/dockspace" for r in receiver.received)  # every signature held
    [fired_hook], [resolved_hook] = webhooks("alert.fired"), webhooks("alert.resolved")
    assert fired_hook["payload"]["data"]["subject"] == resolved_hook["payload"]["data"]["subject"] == SUBJECT
    assert f"{LISTED_IP} is listed on {IP_ZONE} ({IP_ZONE}): 127.0.0.2 SBL" in fired_hook["payload"]["data"]["summary"]
    assert resolved_hook["payload"]["data"]["state"] == "resolved"
    assert Alert.objects.get(rule__kind=DNSBL_LISTED, subject=SUBJECT).state == "resolved"

    # The listed IP rested, by the sweep, and stays so after the delisting; the other one kept sending.
    assert (state(LISTED_IP), state(OTHER_IP)) == (SendingIp.RESTING, SendingIp.ACTIVE)
    [moved] = AuditEvent.objects.filter(action="deliverability.sending_ip.state", target_label__contains=LISTED_IP)
    assert moved.actor_label == "blocklist sweep"
    assert moved.description == f"{LISTED_IP}: ACTIVE -> RESTING: listed on {IP_ZONE} ({IP_ZONE}): 127.0.0.2 SBL"
    assert not AuditEvent.objects.filter(action="deliverability.sending_ip.state", target_label__contains=OTHER_IP)
    assert AuditEvent.objects.filter(action="deliverability.dnsbl.cleared").exists()
    # The rotation as the worker's sync left it (nothing in the test process changed a pool since): the other IP.
    assert "Task mail.sync_dms_files" in worker_log
    assert "out-192-0-2-10" not in rotation(dms_dir) and "out-192-0-2-11" in rotation(dms_dir)
