"""The built-in alert kinds on the DMS files, driven by real syncs and scans (mail.dms.sync): "DMS sync failing"
fires after its 5 minutes when a write fails or changes wait too long, "drift found" while a scan's drift is not
repaired; both resolve once the files are written."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from mail.dms import sync
from mail.models import DmsPendingChange
from mail.tests.factories import make_domain, make_mailbox
from monitoring import alert_services
from monitoring.alert_models import Alert, AlertRule

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FAILING, DRIFT = "monitoring.dms_sync_failing", "monitoring.dms_drift_found"


@pytest.fixture(autouse=True)
def dms_dir(settings, tmp_path):
    settings.DMS_DIR = tmp_path / "dms"
    settings.DMS_HISTORY_DIR = tmp_path / "dms-history"
    settings.DMS_DIR.mkdir()
    return settings.DMS_DIR


def evaluate(at):
    with time_machine.travel(START + timedelta(seconds=at), tick=False):
        alert_services.alerts_evaluate()
    return {alert.rule.kind: alert for alert in Alert.objects.select_related("rule")}


def test_nothing_fires_on_a_fresh_install():
    assert evaluate(0) == {}
    assert AlertRule.objects.filter(kind__in=[FAILING, DRIFT], is_enabled=True).count() == 2


def test_a_failing_write_fires_after_five_minutes_and_resolves_when_a_write_succeeds(dms_dir):
    (dms_dir / "postfix-accounts.cf").write_text("ann@example.com|{SHA512-CRYPT}$6$x$y\n")  # not Dockspace's
    with time_machine.travel(START, tick=False), pytest.raises(sync.ForeignFiles):
        sync.dms_sync()
    assert evaluate(0)[FAILING].state == "pending"
    assert evaluate(299)[FAILING].state == "pending"
    alert = evaluate(300)[FAILING]
    assert (alert.state, alert.subject) == ("firing", "DMS files")
    assert alert.summary.startswith("The last write of the DMS files failed (ForeignFiles: ")
    assert alert.summary.endswith("Last success: never.") and alert.value is None
    with time_machine.travel(START + timedelta(seconds=400), tick=False):
        sync.dms_sync(force=True)
    alert = evaluate(420)[FAILING]
    assert (alert.state, alert.summary, alert.value) == ("resolved", "The DMS files are written.", 0.3)


def test_changes_that_wait_longer_than_the_threshold_fire(dms_dir):
    with time_machine.travel(START, tick=False):
        make_domain("example.com")
        make_mailbox("bob@example.com")  # each change records a pending change; no worker writes it here
    assert DmsPendingChange.objects.exists()
    assert evaluate(15 * 60).get(FAILING) is None  # waited exactly the 15 minutes: not more
    assert evaluate(15 * 60 + 1)[FAILING].state == "pending"
    alert = evaluate(20 * 60 + 1)[FAILING]
    assert alert.state == "firing"
    assert "have waited 20 minutes to be written to the DMS files: is a Celery worker running?" in alert.summary
    rule = AlertRule.objects.get(kind=FAILING)
    rule.thresholds = {"behind_minutes": 60}
    rule.save()
    assert evaluate(21 * 60)[FAILING].state == "resolved"  # the operator's threshold applies at once


def test_drift_fires_while_it_is_not_repaired(dms_dir):
    make_domain("example.com")
    make_mailbox("bob@example.com")
    sync.dms_sync()
    accounts = dms_dir / "postfix-accounts.cf"
    accounts.write_text(accounts.read_text() + "eve@example.com|{SHA512-CRYPT}$6$abc$def\n")
    with time_machine.travel(START, tick=False):
        assert sync.dms_scan(repair=False)
    assert evaluate(60)[DRIFT].state == "pending"
    assert evaluate(659)[DRIFT].state == "pending"  # "for" 10 minutes, from the first evaluation that saw it
    alert = evaluate(660)[DRIFT]
    assert alert.state == "firing" and alert.value == 11
    assert "differ from the database (found 11 minutes ago) and are not repaired" in alert.summary
    sync.dms_scan(repair=True)
    assert evaluate(720)[DRIFT].state == "resolved"
