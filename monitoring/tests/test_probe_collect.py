"""One probe of a host through a `run` stand-in that answers like a DMS host: the commands are fixed argument lists,
and a reading that fails leaves an error for that reading only."""

import pytest

from monitoring.probes.collect import CommandResult, HostReading, collect, probe_commands
from monitoring.probes.parse import DiskUse, LoadAverage, Memory, QueueStats, QuotaUsage

NOW = 1_800_000_000.0

ANSWERS = {
    ("docker", "exec", "mailserver", "cat", "/etc/dms-settings"): CommandResult(
        0, "ENABLE_AMAVIS='0'\nENABLE_OPENDKIM='0'\nENABLE_OPENDMARC='0'\nENABLE_RSPAMD='1'\nENABLE_QUOTAS='1'\n", ""
    ),
    ("docker", "exec", "mailserver", "supervisorctl", "status"): CommandResult(
        3,  # supervisorctl's exit status when a program is not running: still a reading
        "changedetector RUNNING pid 9\ncron RUNNING pid 3\ndovecot RUNNING pid 7\nfail2ban STOPPED Not started\n"
        "postfix RUNNING pid 8\nrspamd BACKOFF Exited too quickly\nrspamd-redis RUNNING pid 6\nrsyslog RUNNING pid 4\n",
        "",
    ),
    ("docker", "exec", "mailserver", "postqueue", "-j"): CommandResult(
        0, '{"queue_name": "deferred", "queue_id": "A1", "arrival_time": 1799999400, "recipients": []}\n', ""
    ),
    ("docker", "exec", "mailserver", "doveadm", "-f", "tab", "quota", "get", "-A"): CommandResult(
        0, "Username\tQuota name\tType\tValue\tLimit\t%\na@example.org\tUser quota\tSTORAGE\t10\t100\t10\n", ""
    ),
    ("docker", "exec", "mailserver", "printenv", "DMS_RELEASE"): CommandResult(0, "v15.1.0\n", ""),
    ("df", "-P", "-B1", "/srv/dms/mail-data"): CommandResult(
        0, "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/sdb 1000 930 70 93% /srv\n", ""
    ),
    ("cat", "/proc/loadavg"): CommandResult(0, "0.10 0.20 0.30 1/100 999\n", ""),
    ("cat", "/proc/meminfo"): CommandResult(0, "MemTotal: 2000 kB\nMemAvailable: 500 kB\n", ""),
    ("nproc",): CommandResult(0, "2\n", ""),
}


class Host:
    """Answers the fixed commands like a DMS host; `changes` replaces answers (or raises) per command."""

    def __init__(self, **changes):
        self.answers = dict(ANSWERS)
        self.raises = {}
        commands = probe_commands("mailserver", "/srv/dms/mail-data")
        for name, answer in changes.items():
            key = tuple(commands[name])
            if isinstance(answer, Exception):
                self.raises[key] = answer
            else:
                self.answers[key] = answer
        self.ran = []

    def __call__(self, argv):
        assert isinstance(argv, list) and all(isinstance(arg, str) for arg in argv)
        self.ran.append(argv)
        if tuple(argv) in self.raises:
            raise self.raises[tuple(argv)]
        return self.answers[tuple(argv)]


def _collect(host):
    return collect(host, "mailserver", "/srv/dms/mail-data", clock=lambda: NOW)


def test_it_reads_every_part_of_a_dms_host():
    reading = _collect(Host())

    assert reading == HostReading(
        services={
            "changedetector": "RUNNING",
            "cron": "RUNNING",
            "dovecot": "RUNNING",
            "fail2ban": "STOPPED",
            "postfix": "RUNNING",
            "rspamd": "BACKOFF",
            "rspamd-redis": "RUNNING",
            "rsyslog": "RUNNING",
        },
        expected_services=frozenset(
            {"postfix", "dovecot", "cron", "rsyslog", "changedetector", "rspamd", "rspamd-redis"}
        ),
        settings={
            "ENABLE_AMAVIS": "0",
            "ENABLE_OPENDKIM": "0",
            "ENABLE_OPENDMARC": "0",
            "ENABLE_RSPAMD": "1",
            "ENABLE_QUOTAS": "1",
        },
        queue=QueueStats(count=1, deferred=1, active=0, hold=0, oldest_age_seconds=600.0),
        disk=DiskUse("/srv", 1000, 930, 70, 93.0),
        load=LoadAverage(0.1, 0.2, 0.3),
        memory=Memory(total_bytes=2000 * 1024, available_bytes=500 * 1024),
        cpus=2,
        quota=[QuotaUsage("a@example.org", 10 * 1024, 100 * 1024)],
        version="v15.1.0",
        errors={},
    )


def test_the_commands_are_the_fixed_argument_lists():
    assert probe_commands("dms-1.mail_host", "/srv/dms/docker-data/dms/mail-data") == {
        "settings": ["docker", "exec", "dms-1.mail_host", "cat", "/etc/dms-settings"],
        "services": ["docker", "exec", "dms-1.mail_host", "supervisorctl", "status"],
        "queue": ["docker", "exec", "dms-1.mail_host", "postqueue", "-j"],
        "quota": ["docker", "exec", "dms-1.mail_host", "doveadm", "-f", "tab", "quota", "get", "-A"],
        "version": ["docker", "exec", "dms-1.mail_host", "printenv", "DMS_RELEASE"],
        "disk": ["df", "-P", "-B1", "/srv/dms/docker-data/dms/mail-data"],
        "load": ["cat", "/proc/loadavg"],
        "memory": ["cat", "/proc/meminfo"],
        "cpus": ["nproc"],
    }


@pytest.mark.parametrize("container", ["", "-rm", "mail server", "mail;reboot", "$(id)", "mail\n", "../x", "é"])
def test_a_container_name_docker_would_not_accept_is_refused(container):
    with pytest.raises(ValueError, match="^container: a Docker container name"):
        probe_commands(container, "/srv/mail")


@pytest.mark.parametrize(
    "volume", ["", "srv/mail", "-h", "/srv/mail data", "/srv;reboot", "/srv/$(id)", "/srv/../etc", "/srv/..", "/a\nb"]
)
def test_a_mail_volume_that_is_not_a_plain_absolute_path_is_refused(volume):
    with pytest.raises(ValueError, match="^mail_volume: an absolute path"):
        probe_commands("mailserver", volume)


def test_a_refused_container_runs_nothing():
    host = Host()
    with pytest.raises(ValueError, match="container"):
        collect(host, "mail;reboot", "/srv/mail")
    assert host.ran == []


def test_a_failing_command_is_that_readings_error_only():
    host = Host(
        queue=CommandResult(1, "", "Error response from daemon: container mailserver is restarting\n"),
        load=CommandResult(0, "not a load average\n", ""),
        memory=TimeoutError("command timed out after 30 s"),
    )

    reading = _collect(host)

    assert reading.errors == {
        "queue": "exit status 1: Error response from daemon: container mailserver is restarting",
        "load": "/proc/loadavg: expected three decimal load averages first, got 'not a load average'",
        "memory": "TimeoutError: command timed out after 30 s",
    }
    assert (reading.queue, reading.load, reading.memory) == (None, None, None)
    assert reading.services is not None and reading.disk is not None and reading.cpus == 2
    assert len(host.ran) == 9


def test_a_failed_settings_reading_leaves_the_expected_services_unknown():
    reading = _collect(Host(settings=CommandResult(1, "", "cat: /etc/dms-settings: No such file or directory\n")))

    assert reading.expected_services is None and reading.settings is None
    assert reading.errors == {"settings": "exit status 1: cat: /etc/dms-settings: No such file or directory"}


def test_supervisorctl_failing_for_another_reason_is_an_error():
    reading = _collect(Host(services=CommandResult(4, "", "unix:///var/run/supervisor.sock no such file\n")))

    assert reading.services is None
    assert reading.errors == {"services": "exit status 4: unix:///var/run/supervisor.sock no such file"}


def test_an_image_without_dms_release_has_no_version_and_no_error():
    reading = _collect(Host(version=CommandResult(1, "", "")))

    assert reading.version is None and reading.errors == {}


@pytest.mark.parametrize(
    "settings_text", ["ENABLE_QUOTAS='0'\n", "SMTP_ONLY='1'\nENABLE_QUOTAS='0'\n", "SMTP_ONLY='1'\n"]
)
def test_quotas_are_not_asked_for_when_dms_has_none(settings_text):
    host = Host(settings=CommandResult(0, settings_text, ""))

    reading = _collect(host)

    assert reading.quota == [] and "quota" not in reading.errors
    assert probe_commands("mailserver", "/srv/dms/mail-data")["quota"] not in host.ran


def test_an_error_message_is_kept_short():
    reading = _collect(Host(cpus=CommandResult(127, "", "x" * 5000)))

    assert reading.errors["cpus"] == "exit status 127: " + "x" * 200 + "..."
