"""The probe parsers, table-driven and without a database: what DMS hosts print, and garbage refused as ValueError."""

import json
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.probes.parse import (
    DiskUse,
    LoadAverage,
    Memory,
    QueueStats,
    QuotaUsage,
    expected_services,
    parse_cpu_count,
    parse_df,
    parse_dms_settings,
    parse_dms_version,
    parse_loadavg,
    parse_meminfo,
    parse_postqueue,
    parse_quota,
    parse_supervisorctl,
)

# `supervisorctl status` in a DMS v15.1 container with Rspamd on and ClamAV off (supervisor 4.2).
DMS_SUPERVISORCTL = """\
amavis                           STOPPED   Not started
changedetector                   RUNNING   pid 1024, uptime 2:03:04
clamav                           STOPPED   Not started
cron                             RUNNING   pid 601, uptime 2:03:10
dovecot                          RUNNING   pid 733, uptime 2:03:08
fail2ban                         STOPPED   Not started
mailserver                       RUNNING   pid 8, uptime 2:03:15
opendkim                         STOPPED   Not started
postfix                          RUNNING   pid 911, uptime 2:03:06
rspamd                           BACKOFF   Exited too quickly (process log may have details)
rspamd-redis                     RUNNING   pid 790, uptime 2:03:07
rsyslog                          RUNNING   pid 604, uptime 2:03:10
saslauthd_ldap                   FATAL     Exited too quickly (process log may have details)
"""


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            DMS_SUPERVISORCTL,
            {
                "amavis": "STOPPED",
                "changedetector": "RUNNING",
                "clamav": "STOPPED",
                "cron": "RUNNING",
                "dovecot": "RUNNING",
                "fail2ban": "STOPPED",
                "mailserver": "RUNNING",
                "opendkim": "STOPPED",
                "postfix": "RUNNING",
                "rspamd": "BACKOFF",
                "rspamd-redis": "RUNNING",
                "rsyslog": "RUNNING",
                "saslauthd_ldap": "FATAL",
            },
        ),
        ("mail:postfix   RUNNING   pid 5, uptime 0:00:01\n", {"mail:postfix": "RUNNING"}),
        (
            "fetchmail-1 STARTING\n\n  dovecot EXITED   Jan 01 12:00 AM\r\n",
            {"fetchmail-1": "STARTING", "dovecot": "EXITED"},
        ),
        ("postfix STOPPING\nclamav UNKNOWN\n", {"postfix": "STOPPING", "clamav": "UNKNOWN"}),
    ],
)
def test_it_reads_each_program_state(text, expected):
    assert parse_supervisorctl(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no programs listed"),
        ("unix:///var/run/supervisor/supervisor.sock no such file\n", "expected 'program STATE description'"),
        ("postfix  SLEEPING  pid 4\n", "expected 'program STATE description'"),
        ("postfix\n", "expected 'program STATE description'"),
        ("Error: .ini file does not include supervisorctl section\n", "expected 'program STATE description'"),
    ],
)
def test_it_refuses_what_is_not_a_status_listing(text, message):
    with pytest.raises(ValueError, match=message) as raised:
        parse_supervisorctl(text)
    assert str(raised.value).startswith("supervisorctl status: ")


# The head of a real v15.1 /etc/dms-settings (sorted, one VAR='value' per line).
DMS_SETTINGS = """\
ACCOUNT_PROVISIONER='FILE'
AMAVIS_LOGLEVEL='0'
ENABLE_AMAVIS='1'
ENABLE_CLAMAV='0'
ENABLE_FAIL2BAN='0'
ENABLE_OPENDKIM='1'
ENABLE_OPENDMARC='1'
ENABLE_POSTGREY='0'
ENABLE_QUOTAS='1'
ENABLE_RSPAMD='0'
ENABLE_RSPAMD_REDIS='0'
POSTGREY_TEXT='Delayed by Postgrey'
SPAM_SUBJECT='***SPAM*** '
TZ=''
"""


def test_it_reads_dms_settings_literally():
    settings_ = parse_dms_settings(DMS_SETTINGS)
    assert settings_["ENABLE_AMAVIS"] == "1"
    assert settings_["POSTGREY_TEXT"] == "Delayed by Postgrey"
    assert settings_["SPAM_SUBJECT"] == "***SPAM*** "
    assert settings_["TZ"] == ""
    assert len(settings_) == 14


@pytest.mark.parametrize(
    "text, expected",
    [
        ("# written at start\n\nA='1'\n", {"A": "1"}),
        ('B="two words"\n', {"B": "two words"}),
        ("C=3\n", {"C": "3"}),
        ("export D='4'\n", {"D": "4"}),
        ("E='it's'\n", {"E": "it's"}),
        ("F='$(rm -rf /)'\n", {"F": "$(rm -rf /)"}),
        ("G='a=b'\n", {"G": "a=b"}),
        ("", {}),
    ],
)
def test_it_reads_quoting_comments_and_blank_lines_without_evaluating(text, expected):
    assert parse_dms_settings(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("no equals sign\n", "line 1: expected VAR='value'"),
        ("A='1'\n1BAD='x'\n", "line 2: expected VAR='value'"),
        ("A='unterminated\n", "line 1: the value of A has no closing quote"),
        ("A=two words\n", "line 1: the value of A has spaces or quotes but no quotes"),
        ("A='\n", "no closing quote"),
    ],
)
def test_it_refuses_lines_that_are_not_settings(text, message):
    with pytest.raises(ValueError, match=message):
        parse_dms_settings(text)


ALWAYS = {"postfix", "dovecot", "cron", "rsyslog", "changedetector"}


@pytest.mark.parametrize(
    "settings_, expected",
    [
        # DMS v15 defaults: Amavis, OpenDKIM and OpenDMARC on, the rest off.
        ({}, ALWAYS | {"amavis", "opendkim", "opendmarc"}),
        (
            {"ENABLE_RSPAMD": "1", "ENABLE_OPENDKIM": "0", "ENABLE_OPENDMARC": "0", "ENABLE_AMAVIS": "0"},
            ALWAYS | {"rspamd", "rspamd-redis"},
        ),
        (
            {"ENABLE_RSPAMD": "1", "ENABLE_RSPAMD_REDIS": "0", "ENABLE_AMAVIS": "0"},
            ALWAYS | {"rspamd", "opendkim", "opendmarc"},
        ),
        (
            {"ENABLE_FAIL2BAN": "1", "ENABLE_CLAMAV": "1", "ENABLE_POSTGREY": "1", "ENABLE_SRS": "1"},
            ALWAYS | {"amavis", "opendkim", "opendmarc", "fail2ban", "clamav", "postgrey", "postsrsd"},
        ),
        (
            {"SMTP_ONLY": "1", "ENABLE_AMAVIS": "0", "ENABLE_OPENDKIM": "0", "ENABLE_OPENDMARC": "0"},
            {"postfix", "cron", "rsyslog", "changedetector"},
        ),
        (
            {"ACCOUNT_PROVISIONER": "LDAP", "ENABLE_SASLAUTHD": "1", "SASLAUTHD_MECHANISMS": "rimap"},
            {"postfix", "dovecot", "cron", "rsyslog", "amavis", "opendkim", "opendmarc", "saslauthd_rimap"},
        ),
        ({"ENABLE_SASLAUTHD": "1"}, ALWAYS | {"amavis", "opendkim", "opendmarc", "saslauthd_ldap"}),
        ({"ENABLE_FETCHMAIL": "1"}, ALWAYS | {"amavis", "opendkim", "opendmarc", "fetchmail"}),
        ({"ENABLE_FETCHMAIL": "1", "FETCHMAIL_PARALLEL": "1"}, ALWAYS | {"amavis", "opendkim", "opendmarc"}),
        (
            {"ENABLE_MTA_STS": "1", "ENABLE_GETMAIL": "1"},
            ALWAYS | {"amavis", "opendkim", "opendmarc", "mta-sts-daemon", "getmail"},
        ),
    ],
)
def test_the_services_that_must_run_follow_the_dms_settings(settings_, expected):
    assert expected_services(settings_) == frozenset(expected)


def test_expected_services_read_from_a_real_settings_file():
    assert expected_services(parse_dms_settings(DMS_SETTINGS)) == frozenset(
        ALWAYS | {"amavis", "opendkim", "opendmarc"}
    )


NOW = 1_800_000_000.0


def _message(queue, arrival, queue_id="4BC5A20C4C3"):
    return json.dumps(
        {
            "queue_name": queue,
            "queue_id": queue_id,
            "arrival_time": arrival,
            "message_size": 257,
            "forced_expire": False,
            "sender": "sender@example.org",
            "recipients": [{"address": "rcpt@example.com", "delay_reason": "connect to mx: Connection refused"}],
        }
    )


@pytest.mark.parametrize(
    "lines, expected",
    [
        ([], QueueStats(count=0, deferred=0, active=0, hold=0, oldest_age_seconds=None)),
        ([""], QueueStats(count=0, deferred=0, active=0, hold=0, oldest_age_seconds=None)),
        (
            [
                _message("deferred", NOW - 3600, "A1"),
                "",
                _message("active", NOW - 10, "B2"),
                _message("hold", NOW - 60, "C3"),
            ],
            QueueStats(count=3, deferred=1, active=1, hold=1, oldest_age_seconds=3600.0),
        ),
        (
            [
                _message("maildrop", NOW - 5, "A1"),
                _message("incoming", NOW - 1, "B2"),
                _message("deferred", NOW - 7200.5, "C3"),
            ],
            QueueStats(count=3, deferred=1, active=0, hold=0, oldest_age_seconds=7200.5),
        ),
        # Listed twice by one showq scan while moving from active to deferred: one message, in its last queue.
        (
            [_message("active", NOW - 90, "9A24A216094"), _message("deferred", NOW - 90, "9A24A216094")],
            QueueStats(count=1, deferred=1, active=0, hold=0, oldest_age_seconds=90.0),
        ),
        # A clock behind the host's: never a negative age.
        ([_message("active", NOW + 30)], QueueStats(count=1, deferred=0, active=1, hold=0, oldest_age_seconds=0.0)),
    ],
)
def test_it_counts_the_queue_and_its_oldest_message(lines, expected):
    assert parse_postqueue("\n".join(lines) + "\n", now=NOW) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("Mail queue is empty\n", "line 1: not a JSON object"),
        (_message("active", NOW) + "\n{truncated", "line 2: not a JSON object"),
        ("[1, 2]\n", "line 1: not a JSON object"),
        ('{"queue_name": "lost", "arrival_time": 1}\n', "line 1: queue_name must be one of"),
        ('{"queue_name": "active"}\n', "line 1: arrival_time must be a number"),
        ('{"queue_name": "active", "arrival_time": "yesterday"}\n', "arrival_time must be a number"),
        ('{"queue_name": "active", "arrival_time": NaN}\n', "arrival_time must be a number"),
        ('{"queue_name": "active", "arrival_time": true}\n', "arrival_time must be a number"),
    ],
)
def test_a_malformed_queue_line_is_refused_with_its_line_number(text, message):
    with pytest.raises(ValueError, match=message) as raised:
        parse_postqueue(text, now=NOW)
    assert str(raised.value).startswith("postqueue -j line ")


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "Filesystem       1-blocks        Used   Available Capacity Mounted on\n"
            "/dev/sda1    105089261568 94580335411 10508926157      91% /var/mail\n",
            DiskUse("/var/mail", 105089261568, 94580335411, 10508926157, 100.0 * 94580335411 / 105089261568),
        ),
        (
            # Root's reserved blocks are neither used nor available: df's percentage is used / (used + available).
            "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/vdb 1000 600 300 67% /srv/docker data\n",
            DiskUse("/srv/docker data", 1000, 600, 300, 100.0 * 600 / 900),
        ),
        (
            "Filesystem 1-blocks Used Available Capacity Mounted on\nmy pool/mail 0 0 0 - /mnt\n",
            DiskUse("/mnt", 0, 0, 0, 0.0),
        ),
    ],
)
def test_it_reads_disk_use(text, expected):
    assert parse_df(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "expected a 'Filesystem ...' header and one line"),
        ("df: /nope: No such file or directory\n", "header"),
        (
            "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/sda1 lots some few 50% /\n",
            "expected 'filesystem",
        ),
        ("Filesystem 1K-blocks Used\n/dev/a 1 2 3 4% /\n/dev/b 1 2 3 4% /x\n", "one line"),
    ],
)
def test_it_refuses_what_df_did_not_print(text, message):
    with pytest.raises(ValueError, match=message):
        parse_df(text)


def test_it_reads_the_real_df_of_this_machine(tmp_path):
    output = subprocess.run(["df", "-P", "-B1", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    disk = parse_df(output)
    assert disk.path.startswith("/") and str(tmp_path).startswith(disk.path)
    assert disk.total_bytes > 0 and 0.0 <= disk.percent_used <= 100.0


def test_it_reads_load_memory_and_cpus():
    assert parse_loadavg("0.52 0.58 1.59 1/467 12345\n") == LoadAverage(0.52, 0.58, 1.59)
    meminfo = "MemTotal:  16314152 kB\nMemFree:  500000 kB\nMemAvailable:  8000000 kB\nHugePages_Total:  0\n"
    assert parse_meminfo(meminfo) == Memory(total_bytes=16314152 * 1024, available_bytes=8000000 * 1024)
    old_kernel = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\n"
    assert parse_meminfo(old_kernel) == Memory(total_bytes=1000 * 1024, available_bytes=420 * 1024)
    assert parse_cpu_count("4\n") == 4


def test_it_reads_this_machines_proc_files_and_nproc():
    with open("/proc/loadavg") as loadavg, open("/proc/meminfo") as meminfo:
        load, memory = parse_loadavg(loadavg.read()), parse_meminfo(meminfo.read())
    assert load.load1 >= 0
    assert 0 < memory.available_bytes <= memory.total_bytes
    assert parse_cpu_count(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout) >= 1


@pytest.mark.parametrize(
    "parser, text, message",
    [
        (parse_loadavg, "", "/proc/loadavg: expected three decimal load averages"),
        (parse_loadavg, "0.5 high 0.1", "/proc/loadavg: expected three decimal load averages"),
        (parse_meminfo, "MemFree: 10 kB\n", "/proc/meminfo: no 'MemTotal: N kB' line"),
        (parse_meminfo, "MemTotal: 10 kB\n", "/proc/meminfo: neither a 'MemAvailable' nor a 'MemFree' line"),
        (parse_cpu_count, "", "nproc: expected a positive whole number"),
        (parse_cpu_count, "0\n", "nproc: expected a positive whole number"),
        (parse_cpu_count, "-2", "nproc: expected a positive whole number"),
        (parse_cpu_count, "4 cores", "nproc: expected a positive whole number"),
    ],
)
def test_it_refuses_garbage_in_place_of_system_readings(parser, text, message):
    with pytest.raises(ValueError, match=message):
        parser(text)


# Printed by the real doveadm (Dovecot 2.3.19.1) of a private instance, count quota backend, two users:
# alice with a 2 GiB storage limit and one message, bob with no limit.
DOVEADM_QUOTA = (
    "Username\tQuota name\tType\tValue\tLimit\t%\n"
    "alice@example.org\tUser quota\tSTORAGE\t1\t2097152\t0\n"
    "alice@example.org\tUser quota\tMESSAGE\t1\t-\t0\n"
    "bob@example.org\tUser quota\tSTORAGE\t0\t-\t0\n"
    "bob@example.org\tUser quota\tMESSAGE\t0\t-\t0\n"
)


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            DOVEADM_QUOTA,
            [
                QuotaUsage(user="alice@example.org", used_bytes=1024, limit_bytes=2 * 1024**3),
                QuotaUsage(user="bob@example.org", used_bytes=0, limit_bytes=None),
            ],
        ),
        ("Username\tQuota name\tType\tValue\tLimit\t%\n", []),
        (
            "Username\tQuota name\tType\tValue\tLimit\t%\r\ncarol@example.org\tUser\tSTORAGE\t5120\t10240\t50\r\n",
            [QuotaUsage(user="carol@example.org", used_bytes=5 * 1024**2, limit_bytes=10 * 1024**2)],
        ),
    ],
)
def test_it_reads_storage_quota_in_bytes(text, expected):
    assert parse_quota(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no output"),
        ("Username          Quota name Type    Value   Limit  %\n", "expected the tab-separated header"),
        ("Quota name\tType\tValue\tLimit\t%\n", "expected the tab-separated header"),
        ("Username\tQuota name\tType\tValue\tLimit\t%\nalice\tUser quota\tSTORAGE\t1\n", "line 2: expected 6"),
        ("Username\tQuota name\tType\tValue\tLimit\t%\nalice\tq\tBYTES\t1\t2\t0\n", "line 2: Type must be"),
        ("Username\tQuota name\tType\tValue\tLimit\t%\nalice\tq\tSTORAGE\tlots\t2\t0\n", "line 2: Value must be"),
        ("Username\tQuota name\tType\tValue\tLimit\t%\nalice\tq\tSTORAGE\t1\tnone\t0\n", "line 2: Limit must be"),
        ("Username\tQuota name\tType\tValue\tLimit\t%\n\tq\tSTORAGE\t1\t2\t0\n", "line 2: empty Username"),
    ],
)
def test_it_refuses_what_doveadm_quota_did_not_print(text, message):
    with pytest.raises(ValueError, match=message) as raised:
        parse_quota(text)
    assert str(raised.value).startswith("doveadm quota get")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("v15.1.0\n", "v15.1.0"),
        ("edge\n", "edge"),
        ("PATH=/usr/bin\nDMS_RELEASE=v14.0.0\nHOME=/root\n", "v14.0.0"),
        ("PATH=/usr/bin\nHOME=/root\n", None),
        ("", None),
    ],
)
def test_it_reads_the_dms_version(text, expected):
    assert parse_dms_version(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("v15 1\n", "expected a version"),
        ("DMS_RELEASE=$(evil)\n", "expected a version"),
        ("<html>\n", "expected a version"),
        ("v15.1.0\nmore\n", "expected the bare value, or NAME=value lines"),
    ],
)
def test_it_refuses_a_version_that_is_not_one(text, message):
    with pytest.raises(ValueError, match=f"DMS_RELEASE: {message}"):
        parse_dms_version(text)


PARSERS = [
    parse_supervisorctl,
    parse_dms_settings,
    lambda text: expected_services(parse_dms_settings(text)),
    lambda text: parse_postqueue(text, now=NOW),
    parse_df,
    parse_loadavg,
    parse_meminfo,
    parse_cpu_count,
    parse_quota,
    parse_dms_version,
]

# Text that looks a little like each input, so the fuzzing reaches past the first check.
_fragments = st.sampled_from(
    [
        "\n",
        "\t",
        " ",
        "'",
        '"',
        "=",
        "%",
        "/",
        "-",
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "kB",
        "1",
        "0.5",
        "RUNNING",
        "postfix",
        "Filesystem",
        "MemTotal:",
        "MemAvailable:",
        "STORAGE",
        "MESSAGE",
        "Username\tQuota name\tType\tValue\tLimit\t%\n",
        "Filesystem 1-blocks Used Available Capacity Mounted on\n",
        '{"queue_name": "deferred", "arrival_time": ',
        "DMS_RELEASE=",
        "NaN",
        "1e999",
        "\x00",
        "é",
    ]
)
_texts = st.one_of(st.text(), st.lists(_fragments, max_size=40).map("".join))


@pytest.mark.parametrize("parser", PARSERS)
@settings(max_examples=300, deadline=None)
@given(text=_texts)
def test_any_text_gives_a_reading_or_a_value_error(parser, text):
    try:
        parser(text)
    except ValueError as exc:
        assert str(exc), "a ValueError must say what is wrong"
