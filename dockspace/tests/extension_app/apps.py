"""A test-only app that extends Dockspace the way a new app would (a DMS file, a model that triggers its sync, a
periodic task, a process, an alert kind, a metric read at scrape time), each declared in this app only. Installed
only in test runs (DOCKSPACE_TEST_APPS, set by dockspace.testenv)."""

import sys

from django.apps import AppConfig

from dockspace.alert_kinds import AlertKind, Observation, Threshold
from dockspace.env import env_str
from dockspace.processes import Process
from dockspace.schedule import PeriodicTask

# The process: a greeter on GREETER_BIND that answers every connection with its GREETING (set by the declaration's
# env) and stops on SIGTERM like any process `make run` starts.
GREETER_BIND = "EXTENSION_GREETER_BIND"
GREETER_CODE = """
import os, socket, sys
host, _, port = sys.argv[1].rpartition(":")
with socket.create_server((host, int(port))) as server:
    print(f"[extension-greeter] listening on {sys.argv[1]}", flush=True)
    while True:
        connection, _ = server.accept()
        with connection:
            connection.sendall(os.environ["GREETING"].encode() + b"\\n")
"""


def greeter_argv(environ):
    return [sys.executable, "-c", GREETER_CODE, env_str(GREETER_BIND, "127.0.0.1:8026", environ)]


def switch_observations(rule):
    """One observation per AlarmSwitch: firing while it is on and its value (if any) is over the threshold."""
    from dockspace.tests.extension_app.models import AlarmSwitch

    for switch in AlarmSwitch.objects.order_by("name"):
        over = switch.value is None or switch.value > rule.threshold("above")
        yield Observation(
            subject=switch.name,
            is_firing=switch.is_on and over,
            value=switch.value,
            summary=f"{switch.name} is {'on' if switch.is_on else 'off'}",
        )


SWITCH_ON = AlertKind(
    name="extension_app.switch_on",
    label="Alarm switch on (test extension)",
    subject_kind="alarm switch",
    description="Proves that an app adds an alert kind by declaring it in its own AppConfig.",
    thresholds=(Threshold(name="above", label="Value above", unit="units", default=10, minimum=0, maximum=1000),),
    for_seconds=120,
    repeat_seconds=3600,
    evaluate=switch_observations,
)


class ExtensionAppConfig(AppConfig):
    name = "dockspace.tests.extension_app"
    label = "extension_app"
    verbose_name = "Test extension"
    default_auto_field = "django.db.models.BigAutoField"

    def periodic_tasks(self):
        return [
            PeriodicTask(
                name="Count the people (test extension)",
                task="extension_app.count_people",
                interval_minutes=10,
                expires_seconds=60,
                description="Proves that an app adds a periodic task by declaring it in its own AppConfig.",
            ),
        ]

    def alert_kinds(self):
        return [SWITCH_ON]

    def processes(self):
        return [
            Process(
                name="extension-greeter",
                description="test extension: answers every connection with a greeting",
                argv=greeter_argv,
                bind_setting=GREETER_BIND,
                bind_default="127.0.0.1:8026",
                env={"GREETING": "hello from extension_app"},
            )
        ]

    def metrics_collectors(self):
        from dockspace.tests.extension_app.metrics import BlockedHeloCollector

        return [BlockedHeloCollector()]

    def dms_files(self):
        from dockspace.tests.extension_app.dms import HELO_ACCESS

        return [HELO_ACCESS]
