"""Alert kinds as data: each app declares the conditions it can be alerted on in `AppConfig.alert_kinds()`,
`declared_alert_kinds()` collects them, and monitoring turns each into an AlertRule an operator tunes in the admin.

In dockspace, the bottom layer, like dockspace.schedule: any app (mail, deliverability, monitoring) declares kinds
without importing monitoring. A kind is:

    AlertKind(
        name="deliverability.dnsbl_listed",        # "<declaring app's label>.<slug>", stable: rules are keyed by it
        label="Sending IP on a blocklist",         # what operators read in the admin and in notifications
        subject_kind="sending IP",                 # what one alert is about (one alert row per subject)
        description="...",                         # when it fires, in a sentence or two
        thresholds=(Threshold(name="lists", label="Listed on at least", unit="lists", default=1, minimum=1),),
        for_seconds=10 * 60,                       # default: the condition must hold this long before it fires
        repeat_seconds=4 * 3600,                   # default: reminder interval while it keeps firing
        evaluate=dnsbl_observations,               # (RuleView) -> Iterable[Observation], see below
    )

`evaluate(rule)` reads the current state (rows an app's probes recorded, never the network: it runs every minute)
and returns one Observation per subject it knows about, firing or not; a subject it stops reporting is resolved.
`rule.threshold("lists")` is the operator's value (or the default) and `rule.now` the evaluation time.
"""

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from django.core.exceptions import ImproperlyConfigured

NAME_RULE = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\Z")
THRESHOLD_NAME_RULE = re.compile(r"[a-z][a-z0-9_]*\Z")
NAME_MAX_LENGTH = 100
SUBJECT_MAX_LENGTH = 200
DEFAULT_REPEAT_SECONDS = 4 * 3600  # Alertmanager's repeat_interval


@dataclass(frozen=True, kw_only=True)
class Threshold:
    """One number an operator tunes on a rule: its key in the rule's thresholds, how the admin labels it, its
    unit ("messages", "minutes", "%", "days"), default and bounds."""

    name: str
    label: str
    unit: str
    default: float
    minimum: float = 0
    maximum: float | None = None
    integer: bool = True

    def __post_init__(self):
        if not THRESHOLD_NAME_RULE.match(self.name):
            raise ValueError(
                f"threshold name {self.name!r}: lowercase letters, digits and '_', starting with a letter."
            )
        if not self.label or not self.unit:
            raise ValueError(f"threshold {self.name!r}: label and unit say what the number means.")
        if self.problem(self.default):
            raise ValueError(f"threshold {self.name!r}: default {self.default!r}: {self.problem(self.default)}")

    def problem(self, value) -> str:
        """Why `value` is not acceptable for this threshold ("" when it is)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number."
        if self.integer and value != int(value):
            return "must be a whole number."
        if value < self.minimum:
            return f"must be at least {self.minimum:g}."
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}."
        return ""


@dataclass(frozen=True)
class Observation:
    """What a kind sees about one subject now: whether the condition holds, the measured value (None when the
    condition has no number), and a sentence for the operator (sent in notifications: never a secret).
    `muted_by` names a broader condition that covers this one (e.g. "mx1 is down"): while it is set, the alert
    still goes pending, fires and resolves, but no fired or repeat notification is sent (Alertmanager's
    inhibition)."""

    subject: str
    is_firing: bool
    value: float | None = None
    summary: str = ""
    muted_by: str = ""


@dataclass(frozen=True)
class RuleView:
    """The rule as a kind's evaluate() sees it: plain values, no model."""

    kind: str
    thresholds: Mapping[str, float]
    now: datetime

    def threshold(self, name: str) -> float:
        return self.thresholds[name]


@dataclass(frozen=True, kw_only=True)
class AlertKind:
    """A condition Dockspace alerts on; see the module docstring."""

    name: str
    label: str
    subject_kind: str
    description: str
    evaluate: Callable[[RuleView], Iterable[Observation]]
    thresholds: tuple[Threshold, ...] = ()
    for_seconds: int = 0
    repeat_seconds: int = DEFAULT_REPEAT_SECONDS
    notify_resolved: bool = True
    enabled_by_default: bool = True
    app_label: str = field(default="", compare=False)  # filled in by the collector

    def __post_init__(self):
        if not NAME_RULE.match(self.name) or len(self.name) > NAME_MAX_LENGTH:
            raise ValueError(
                f"alert kind name {self.name!r}: '<app label>.<slug>', lowercase letters, digits and '_', "
                f"at most {NAME_MAX_LENGTH} characters."
            )
        if not self.label or not self.subject_kind or not self.description:
            raise ValueError(f"alert kind {self.name!r}: label, subject_kind and description are required.")
        if not callable(self.evaluate):
            raise ValueError(f"alert kind {self.name!r}: evaluate must be callable.")
        names = [threshold.name for threshold in self.thresholds]
        if len(set(names)) != len(names):
            raise ValueError(f"alert kind {self.name!r}: threshold names must be distinct, got {names}.")
        if self.for_seconds < 0:
            raise ValueError(f"alert kind {self.name!r}: for_seconds must be 0 or more.")
        if self.repeat_seconds < 60:
            raise ValueError(f"alert kind {self.name!r}: repeat_seconds must be at least 60.")

    def default_thresholds(self) -> dict[str, float]:
        return {threshold.name: threshold.default for threshold in self.thresholds}

    def view(self, thresholds: Mapping[str, float], now: datetime) -> RuleView:
        """The RuleView for a rule's stored thresholds: a threshold missing there (declared after the rule was
        created) has its default."""
        values = {**self.default_thresholds(), **{k: v for k, v in thresholds.items() if k in self.threshold_names}}
        return RuleView(kind=self.name, thresholds=MappingProxyType(values), now=now)

    @property
    def threshold_names(self) -> tuple[str, ...]:
        return tuple(threshold.name for threshold in self.thresholds)


def collect_alert_kinds(app_configs) -> list[AlertKind]:
    """Every app's alert kinds (`AppConfig.alert_kinds()`), in INSTALLED_APPS order."""
    declared: dict[str, AlertKind] = {}
    for config in app_configs:
        hook = getattr(config, "alert_kinds", None)
        if not callable(hook):
            continue
        for kind in hook():
            if not isinstance(kind, AlertKind):
                raise ImproperlyConfigured(
                    f"{config.label}.alert_kinds() returned {kind!r}: each item must be a "
                    "dockspace.alert_kinds.AlertKind."
                )
            if kind.name.split(".", 1)[0] != config.label:
                raise ImproperlyConfigured(
                    f"{config.label}.alert_kinds(): {kind.name!r} must start with the app's label ({config.label}.)."
                )
            if kind.name in declared:
                raise ImproperlyConfigured(f"the alert kind {kind.name!r} is declared twice by {config.label}.")
            object.__setattr__(kind, "app_label", config.label)
            declared[kind.name] = kind
    return list(declared.values())


def declared_alert_kinds() -> list[AlertKind]:
    from django.apps import apps

    return collect_alert_kinds(apps.get_app_configs())


def alert_kind(name: str) -> AlertKind | None:
    """The declared kind called `name`, or None (its app was removed)."""
    return next((kind for kind in declared_alert_kinds() if kind.name == name), None)
