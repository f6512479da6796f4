"""Alert kinds as data: each app declares its own in AppConfig.alert_kinds(); malformed declarations are refused
naming the rule, and two apps cannot claim one name."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured

from dockspace.alert_kinds import AlertKind, Threshold, collect_alert_kinds, declared_alert_kinds


def declare(**changes):
    fields = {
        "name": "one.thing_broken",
        "label": "Thing broken",
        "subject_kind": "thing",
        "description": "The thing is broken.",
        "evaluate": lambda rule: [],
    }
    return AlertKind(**{**fields, **changes})


def test_each_app_declares_its_own_kinds_in_installed_apps_order():
    assert [kind.name for kind in declared_alert_kinds()] == [
        "deliverability.dns_check_failed",
        "deliverability.dnsbl_listed",
        "deliverability.dnsbl_broken",
        "deliverability.ip_warmup_standby",
        "monitoring.dms_sync_failing",
        "monitoring.dms_drift_found",
        "monitoring.host_down",
        "monitoring.dms_service_down",
        "monitoring.mail_queue_large",
        "monitoring.disk_full",
        "monitoring.certificate_expiring",
        "monitoring.worker_silent",
        "monitoring.beat_silent",
        "monitoring.watchdog_silent",
        "monitoring.bounce_rate_high",
        "monitoring.deferred_queue_growing",
        "monitoring.remote_refusing",
        "monitoring.ip_bounce_rate_high",
        "monitoring.complaint_rate_high",
        "monitoring.policy_unreachable",
        "extension_app.switch_on",
    ]
    assert {kind.app_label for kind in declared_alert_kinds()} == {"deliverability", "monitoring", "extension_app"}


def test_the_defaults_are_the_ones_operators_expect():
    kind = declare(thresholds=(Threshold(name="days", label="Within", unit="days", default=14, minimum=1),))
    assert (kind.for_seconds, kind.repeat_seconds, kind.notify_resolved, kind.enabled_by_default) == (
        0,
        4 * 3600,
        True,
        True,
    )
    now = datetime(2025, 1, 1, tzinfo=UTC)
    view = kind.view({"days": 7, "retired": 3}, now)
    assert (view.threshold("days"), dict(view.thresholds), view.now) == (7, {"days": 7}, now)
    assert kind.view({}, now).threshold("days") == 14  # a threshold the rule does not hold yet has its default


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"name": "thing_broken"}, "'<app label>.<slug>'"),
        ({"name": "One.Thing"}, "'<app label>.<slug>'"),
        ({"name": "one." + "x" * 100}, "at most 100 characters"),
        ({"label": ""}, "label, subject_kind and description are required"),
        ({"description": ""}, "label, subject_kind and description are required"),
        ({"evaluate": None}, "evaluate must be callable"),
        ({"for_seconds": -1}, "for_seconds must be 0 or more"),
        ({"repeat_seconds": 59}, "repeat_seconds must be at least 60"),
        (
            {"thresholds": (Threshold(name="n", label="N", unit="u", default=1),) * 2},
            "threshold names must be distinct",
        ),
    ],
)
def test_a_malformed_kind_is_refused_naming_the_rule(changes, rule):
    with pytest.raises(ValueError) as refused:
        declare(**changes)
    assert rule in str(refused.value)


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"name": "Days"}, "lowercase letters"),
        ({"unit": ""}, "label and unit say what the number means"),
        ({"default": 0}, "default 0: must be at least 1."),
        ({"default": 400}, "default 400: must be at most 365."),
        ({"default": 1.5}, "must be a whole number"),
    ],
)
def test_a_malformed_threshold_is_refused(fields, rule):
    with pytest.raises(ValueError, match=rule):
        Threshold(**{"name": "days", "label": "Within", "unit": "days", "default": 14, "minimum": 1, "maximum": 365,
                     **fields})  # fmt: skip


@pytest.mark.parametrize(
    ("value", "problem"),
    [(14, ""), (1, ""), (365, ""), (0, "must be at least 1."), (366, "must be at most 365."), (2.5, "whole number"),
     (True, "must be a number."), ("14", "must be a number.")],
)  # fmt: skip
def test_a_thresholds_values_are_checked(value, problem):
    threshold = Threshold(name="days", label="Within", unit="days", default=14, minimum=1, maximum=365)
    assert (problem in threshold.problem(value)) and (bool(threshold.problem(value)) == bool(problem))


def test_a_kind_must_carry_its_apps_label():
    app = SimpleNamespace(label="two", alert_kinds=lambda: [declare()])
    with pytest.raises(ImproperlyConfigured, match="'one.thing_broken' must start with the app's label"):
        collect_alert_kinds([app])


def test_a_kind_declared_twice_is_refused():
    app = SimpleNamespace(label="one", alert_kinds=lambda: [declare(), declare(label="Again")])
    with pytest.raises(ImproperlyConfigured, match="'one.thing_broken' is declared twice"):
        collect_alert_kinds([app])


def test_only_alert_kinds_are_accepted():
    app = SimpleNamespace(label="one", alert_kinds=lambda: [{"name": "one.x"}])
    with pytest.raises(ImproperlyConfigured, match="each item must be a dockspace.alert_kinds.AlertKind"):
        collect_alert_kinds([app, SimpleNamespace(label="none")])
