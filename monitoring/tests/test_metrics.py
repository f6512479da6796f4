"""/metrics as Prometheus reads it (prometheus_client's own text parser): names by the conventions, values that
follow the data (people, mailboxes, DMS sync state read at scrape time) and the events counted as they happen
(sign-ins, OIDC tokens, Celery task runs, DMS syncs), and the hook through which an app adds its own metrics."""

import io
import json
import re

import pytest
from celery import shared_task
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import AppSettings
from accounts.tests.factories import PASSWORD, UserFactory, totp_code, totp_device
from dockspace.tests.extension_app.models import BlockedHelo
from mail import services
from mail.dms.sync import dms_scan, dms_sync
from mail.dms.writer import WriteError
from mail.models import Mailbox
from mail.tests.factories import make_domain, make_mailbox
from monitoring import exposition
from monitoring.tasks import heartbeat

pytestmark = pytest.mark.django_db


def scrape(client=None):
    response = (client or Client()).get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def value(families, name, sample=None, **labels):
    """The value of one sample: family `name`, sample `sample` (default: the family's name, `_total` for a
    counter), with exactly these labels; 0 when the sample is not there yet."""
    family = families[name]
    wanted = sample or (name + "_total" if family.type == "counter" else name)
    found = [s.value for s in family.samples if s.name == wanted and s.labels == labels]
    assert len(found) <= 1
    return found[0] if found else 0


# --- conventions ------------------------------------------------------------------------------------------------


def test_every_metric_follows_prometheus_naming_and_carries_no_address_or_id():
    make_mailbox("ada@example.com")
    families = scrape()
    assert len(families) >= 20
    for name, family in families.items():
        assert name.startswith("dockspace_"), name
        assert re.fullmatch(r"[a-z_]+", name), name
        assert family.documentation, name
        if family.type == "counter":
            assert {s.name for s in family.samples} <= {name + "_total"}, name  # no _created series
        for sample in family.samples:
            for label, text in sample.labels.items():
                assert "@" not in text and not text.isdigit(), (name, label, text)
    units = [name for name in families if "duration" in name or "timestamp" in name]
    assert units and all(name.endswith("_seconds") for name in units)


def test_known_label_values_are_there_at_zero_before_the_first_event():
    families = scrape()
    results = {
        s.labels["result"] for s in families["dockspace_sign_ins"].samples if s.name == "dockspace_sign_ins_total"
    }
    assert results == {"success", "failure", "locked_out", "code_failure"}
    grants = {s.labels["grant_type"] for s in families["dockspace_oidc_tokens_issued"].samples}
    assert grants == {"authorization_code", "refresh_token", "client_credentials"}


# --- read from the database at scrape time -----------------------------------------------------------------------


def test_counts_follow_the_data_at_each_scrape():
    before = scrape()
    make_domain("example.com")
    mailbox = make_mailbox("ada@example.com")
    services.alias_create(address="info@example.com", targets=["ada@example.com"], actor_label="test")
    after = scrape()
    assert (
        value(after, "dockspace_mailboxes", state="active") == value(before, "dockspace_mailboxes", state="active") + 1
    )
    assert value(after, "dockspace_domains", state="active") == value(before, "dockspace_domains", state="active") + 1
    assert value(after, "dockspace_aliases", state="active") == value(before, "dockspace_aliases", state="active") + 1
    assert value(after, "dockspace_people", state="active") == value(before, "dockspace_people", state="active") + 1

    Mailbox.objects.filter(pk=mailbox.pk).update(state=Mailbox.SUSPENDED)
    suspended = scrape()
    assert value(suspended, "dockspace_mailboxes", state="active") == value(
        before, "dockspace_mailboxes", state="active"
    )
    assert value(suspended, "dockspace_mailboxes", state="suspended") == 1


def test_the_dms_sync_state_is_read_at_scrape_time_and_syncs_are_counted(settings):
    make_mailbox("ada@example.com")
    before = scrape()
    assert value(before, "dockspace_dms_sync_last_success_timestamp_seconds") == 0  # never written yet
    assert value(before, "dockspace_dms_pending_changes") == 1

    dms_sync()
    after = scrape()
    assert value(after, "dockspace_dms_sync_last_success_timestamp_seconds") > 0
    assert value(after, "dockspace_dms_sync_failing") == 0
    assert value(after, "dockspace_dms_pending_changes") == 0
    assert value(after, "dockspace_dms_file_writes") > value(before, "dockspace_dms_file_writes")
    assert (
        value(after, "dockspace_dms_syncs", outcome="success")
        == value(before, "dockspace_dms_syncs", outcome="success") + 1
    )
    assert value(after, "dockspace_dms_sync_duration_seconds", "dockspace_dms_sync_duration_seconds_count") == (
        value(before, "dockspace_dms_sync_duration_seconds", "dockspace_dms_sync_duration_seconds_count") + 1
    )

    settings.DMS_DIR.rename(settings.DMS_DIR.with_name("moved"))
    settings.DMS_DIR.write_text("a file where the DMS directory should be")
    with pytest.raises(WriteError):
        dms_sync()
    failed = scrape()
    assert (
        value(failed, "dockspace_dms_syncs", outcome="failure")
        == value(after, "dockspace_dms_syncs", outcome="failure") + 1
    )
    assert value(failed, "dockspace_dms_sync_failing") == 1
    assert value(failed, "dockspace_dms_sync_last_attempt_timestamp_seconds") > value(
        failed, "dockspace_dms_sync_last_success_timestamp_seconds"
    )


def test_drift_found_by_a_scan_is_counted_and_shown_until_repaired(settings):
    make_mailbox("ada@example.com")
    dms_sync()
    before = scrape()
    accounts = settings.DMS_DIR / "postfix-accounts.cf"
    accounts.write_text(accounts.read_text() + "mallory@example.com|{SHA512-CRYPT}$6$x$y\n")  # edited by hand

    assert dms_scan(repair=False)
    found = scrape()
    assert value(found, "dockspace_dms_drift_detected") == value(before, "dockspace_dms_drift_detected") + 1
    assert value(found, "dockspace_dms_drift_unrepaired") == 1

    dms_scan(repair=True)
    repaired = scrape()
    assert value(repaired, "dockspace_dms_drift_unrepaired") == 0
    assert "mallory" not in accounts.read_text()


# --- counted as it happens ---------------------------------------------------------------------------------------


def test_the_heartbeats_of_worker_beat_and_watchdog_are_read_at_scrape_time():
    from datetime import UTC, datetime

    from monitoring.heartbeats import heartbeat_record

    names = {
        "worker": "dockspace_worker_last_seen_timestamp_seconds",
        "beat": "dockspace_beat_last_tick_timestamp_seconds",
        "watchdog": "dockspace_watchdog_last_seen_timestamp_seconds",
    }
    before = scrape()
    assert {process: value(before, name) for process, name in names.items()} == dict.fromkeys(names, 0)
    seen = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    heartbeat_record("watchdog", now=seen)
    after = scrape()
    assert value(after, names["watchdog"]) == seen.timestamp()
    assert value(after, names["worker"]) == 0  # positive control: each process has its own


def test_sign_ins_are_counted_by_result():
    person = UserFactory(email="ada@example.com")
    client = Client()
    before = scrape()

    client.post("/login/", {"email": person.email, "password": "not the password"})
    client.post("/login/", {"email": "nobody@example.com", "password": "whatever it is"})
    assert client.post("/login/", {"email": person.email, "password": PASSWORD}).status_code == 302
    after = scrape()
    assert (
        value(after, "dockspace_sign_ins", result="failure")
        == value(before, "dockspace_sign_ins", result="failure") + 2
    )
    assert (
        value(after, "dockspace_sign_ins", result="success")
        == value(before, "dockspace_sign_ins", result="success") + 1
    )

    limit = AppSettings.load().lockout_account_failures
    for _ in range(limit):
        client.post("/login/", {"email": person.email, "password": "not the password"})
    locked = client.post("/login/", {"email": person.email, "password": PASSWORD})
    assert b"Too many failed attempts" in locked.content
    final = scrape()
    assert (
        value(final, "dockspace_sign_ins", result="locked_out")
        == value(after, "dockspace_sign_ins", result="locked_out") + 1
    )
    assert (
        value(final, "dockspace_sign_ins", result="failure")
        == value(after, "dockspace_sign_ins", result="failure") + limit
    )


def test_a_wrong_second_factor_code_is_counted_as_a_code_failure():
    person = UserFactory(email="ada@example.com")
    device = totp_device(person)
    client = Client()
    before = scrape()
    assert client.post("/login/", {"email": person.email, "password": PASSWORD})["Location"] == "/login/code/"
    wrong = f"{(int(totp_code(device)) + 1) % 1000000:06d}"
    assert b"That code is wrong" in client.post("/login/code/", {"code": wrong}).content
    after = scrape()
    assert value(after, "dockspace_sign_ins", result="code_failure") == (
        value(before, "dockspace_sign_ins", result="code_failure") + 1
    )
    # The right password alone is not a sign-in yet, nor a failure.
    for result in ("success", "failure"):
        assert value(after, "dockspace_sign_ins", result=result) == value(before, "dockspace_sign_ins", result=result)


def test_issued_oidc_tokens_are_counted_by_grant_and_refused_requests_are_not():
    out = io.StringIO()
    call_command(
        "oidc_client",
        "add",
        "--name",
        "Robot",
        "--client-credentials",
        "--scope",
        "introspection",
        "--json",
        stdout=out,
    )
    client_app = json.loads(out.getvalue())
    before = scrape()
    token = {"grant_type": "client_credentials", "client_id": client_app["client_id"]}
    assert Client().post("/oauth/token/", {**token, "client_secret": client_app["client_secret"]}).status_code == 200
    assert Client().post("/oauth/token/", {**token, "client_secret": "wrong"}).status_code != 200
    after = scrape()
    assert value(after, "dockspace_oidc_tokens_issued", grant_type="client_credentials") == (
        value(before, "dockspace_oidc_tokens_issued", grant_type="client_credentials") + 1
    )
    assert value(after, "dockspace_oidc_tokens_issued", grant_type="authorization_code") == value(
        before, "dockspace_oidc_tokens_issued", grant_type="authorization_code"
    )


@shared_task(name="monitoring_tests.explode")
def explode():
    raise ValueError("boom")


def test_celery_task_runs_are_counted_by_task_and_outcome_with_their_duration():
    before = scrape()
    heartbeat.apply()
    heartbeat.apply()
    explode.apply()
    after = scrape()
    runs = "dockspace_celery_task_runs"
    assert value(after, runs, task="monitoring.heartbeat", outcome="success") == (
        value(before, runs, task="monitoring.heartbeat", outcome="success") + 2
    )
    assert value(after, runs, task="monitoring_tests.explode", outcome="failure") == (
        value(before, runs, task="monitoring_tests.explode", outcome="failure") + 1
    )
    duration = "dockspace_celery_task_duration_seconds"
    count = duration + "_count"
    assert value(after, duration, count, task="monitoring.heartbeat") == (
        value(before, duration, count, task="monitoring.heartbeat") + 2
    )


# --- the hook: an app's own metrics -----------------------------------------------------------------------------


def test_an_app_adds_its_metrics_by_declaring_a_collector():
    BlockedHelo.objects.create(name="spammer.example")
    families = scrape()
    assert value(families, "dockspace_extension_blocked_helos") == 1  # declared by the test extension app only
    up = {s.labels["app"]: s.value for s in families["dockspace_metrics_collector_up"].samples}
    assert up == {"monitoring": 1, "extension_app": 1}


def test_an_app_whose_metrics_fail_is_left_out_and_the_rest_still_answer(monkeypatch):
    from dockspace.tests.extension_app.metrics import BlockedHeloCollector

    def broken(self):
        raise RuntimeError("its table is gone")

    monkeypatch.setattr(BlockedHeloCollector, "collect", broken)
    families = scrape()
    assert "dockspace_extension_blocked_helos" not in families
    assert "dockspace_mailboxes" in families
    up = {s.labels["app"]: s.value for s in families["dockspace_metrics_collector_up"].samples}
    assert up == {"monitoring": 1, "extension_app": 0}


def test_a_declaration_that_is_not_a_collector_is_refused_naming_the_app(monkeypatch):
    from django.apps import apps

    config = apps.get_app_config("extension_app")
    monkeypatch.setattr(type(config), "metrics_collectors", lambda self: ["not a collector"])
    with pytest.raises(ImproperlyConfigured, match=r"extension_app.metrics_collectors\(\) returned 'not a collector'"):
        exposition.declared_collectors()


def test_a_count_that_cannot_be_written_never_fails_a_sign_in(monkeypatch, caplog):
    from monitoring import metrics

    class Unwritable:
        def labels(self, **labels):
            raise FileNotFoundError(2, "No such file or directory")  # its counter directory was removed

    person = UserFactory(email="ada@example.com")
    monkeypatch.setattr(metrics, "SIGN_INS", Unwritable())
    wrong = Client().post("/login/", {"email": person.email, "password": "not the password"})
    right = Client().post("/login/", {"email": person.email, "password": PASSWORD})
    assert b"The email address or password is wrong." in wrong.content
    assert right.status_code == 302 and right["Location"] == "/profile/"
    assert "metrics: on_logged_in could not count" in caplog.text
    assert "metrics: on_login_failed could not count" in caplog.text


def test_alerts_firing_are_counted_by_kind_from_zero():
    from monitoring.alert_services import alerts_evaluate
    from monitoring.tests.factories import switch, switch_rule

    switch_rule(for_seconds=0)
    families = scrape()
    at_zero = {s.labels["kind"]: s.value for s in families["dockspace_alerts_firing"].samples}
    assert at_zero["extension_app.switch_on"] == at_zero["monitoring.worker_silent"] == 0
    switch("alarm-1", is_on=True)
    switch("alarm-2", is_on=True)
    alerts_evaluate()
    assert value(scrape(), "dockspace_alerts_firing", kind="extension_app.switch_on") == 2
    switch("alarm-1", is_on=False)
    alerts_evaluate()
    assert value(scrape(), "dockspace_alerts_firing", kind="extension_app.switch_on") == 1
