"""Where DMS's Postfix asks the policy service, checked with the real Postfix tools as DMS applies the files: with
DOCKSPACE_POLICY_SERVICE set, the check comes first at RCPT (in front of the list DMS's own set-up left, postgrey
and policyd-spf kept), at DATA and at the end of each message, with default_action=DUNNO so mail flows while the
service is down; without it, nothing of the policy is written."""

import shutil
import subprocess
from pathlib import Path

import pytest

from deliverability.dms_files import PostfixPlan, main_file_lines, user_patches_file_lines
from deliverability.postfix_policy import policy_check
from deliverability.postfix_transports import PoolIp, PoolRoute, parse_user_patches, user_patches_is_inert
from mail.dms.catalog import HEADER

needs_postfix = pytest.mark.skipif(
    not (shutil.which("postconf") and Path("/etc/postfix/master.cf").exists()),
    reason="needs Postfix (postconf and /etc/postfix)",
)

CHECK = "check_policy_service { inet:dockspace-policy:10040, timeout=5s, default_action=DUNNO }"
# DMS's target/postfix/main.cf lists, as its set-up leaves them with postgrey and policyd-spf on.
DMS_RECIPIENT = (
    "permit_sasl_authenticated, permit_mynetworks, reject_unauth_destination, check_policy_service "
    "unix:private/policyd-spf, reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname, "
    "reject_unknown_recipient_domain, check_policy_service inet:127.0.0.1:10023"
)
DMS_DATA = "permit_mynetworks, permit_sasl_authenticated, reject_unauth_pipelining"
ROUTES = (PoolRoute("bulk", ("example.com",), (PoolIp("192.0.2.10", "out1.example.com", 1),)),)


def _run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60, **kw)


def _start_dms(tmp_path, plan):
    """A Postfix directory as DMS's start-up leaves it: its lists, postfix-main.cf appended and normalised, then
    user-patches.sh run (twice: a restarted container keeps what the first run did)."""
    conf, dms = tmp_path / "postfix", tmp_path / "dms"
    conf.mkdir()
    dms.mkdir()
    shutil.copy("/etc/postfix/master.cf", conf / "master.cf")
    main = (conf / "main.cf").read_text() if (conf / "main.cf").exists() else ""
    main += f"smtpd_recipient_restrictions = {DMS_RECIPIENT}\nsmtpd_data_restrictions = {DMS_DATA}\n"
    main += HEADER + "".join(f"{line}\n" for line in main_file_lines(plan))
    (conf / "main.cf").write_text(main)
    normalised = _run(["postconf", "-c", str(conf), "-n"])
    (conf / "main.cf").write_text(normalised.stdout)
    (dms / "user-patches.sh").write_text(HEADER + "".join(f"{line}\n" for line in user_patches_file_lines(plan)))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DOCKSPACE_POSTFIX_DIR": str(conf)}
    for _ in range(2):
        _run(["bash", str(dms / "user-patches.sh")], env=env)
    return conf, normalised.stderr


def _value(conf, name):
    return _run(["postconf", "-c", str(conf), "-h", name]).stdout.strip()


@needs_postfix
def test_the_policy_check_comes_first_at_rcpt_data_and_end_of_message_and_dms_lists_are_kept(tmp_path):
    conf, warnings = _start_dms(tmp_path, PostfixPlan(ROUTES, "dockspace-policy:10040"))

    assert _value(conf, "smtpd_recipient_restrictions") == f"{CHECK}, {DMS_RECIPIENT}"
    assert _value(conf, "smtpd_data_restrictions") == f"{CHECK}, {DMS_DATA}"
    assert _value(conf, "smtpd_end_of_data_restrictions") == f"{CHECK}, {CHECK[:-2]}, policy_context=hold }}"
    assert [line for line in warnings.splitlines() if "overriding earlier entry" not in line] == []


@needs_postfix
def test_without_a_policy_service_nothing_of_it_is_written(tmp_path):
    conf, _ = _start_dms(tmp_path, PostfixPlan(ROUTES, ""))

    assert _value(conf, "smtpd_recipient_restrictions") == DMS_RECIPIENT
    assert _value(conf, "smtpd_data_restrictions") == DMS_DATA
    assert _value(conf, "smtpd_end_of_data_restrictions") == ""


def test_the_policy_lines_make_user_patches_need_a_restart_even_without_pools():
    with_policy = "\n".join(user_patches_file_lines(PostfixPlan((), "127.0.0.1:10040")))
    without = "\n".join(user_patches_file_lines(PostfixPlan((), "")))

    assert not user_patches_is_inert(with_policy)
    assert user_patches_is_inert(without)
    assert parse_user_patches(with_policy, "user-patches.sh")[0] == [
        "smtpd_recipient_restrictions: check_policy_service { inet:127.0.0.1:10040, timeout=5s, default_action=DUNNO }"
    ]


@pytest.mark.parametrize(
    "service, check",
    [
        ("dockspace-policy:10040", "inet:dockspace-policy:10040"),
        ("[2001:db8::5]:10040", "inet:[2001:db8::5]:10040"),
        ("10.0.0.5:10040", "inet:10.0.0.5:10040"),
    ],
)
def test_the_check_names_the_service_as_postfix_reads_it(service, check):
    assert policy_check(service) == f"check_policy_service {{ {check}, timeout=5s, default_action=DUNNO }}"


@pytest.mark.parametrize("service", ["nohost", ":10040", "a,b:10040", "host:0", "host:99999"])
def test_an_unusable_policy_service_is_refused_naming_the_setting(service):
    with pytest.raises(ValueError, match="DOCKSPACE_POLICY_SERVICE must be HOST:PORT"):
        policy_check(service)


@pytest.mark.parametrize(
    "service",
    ["x';touch$IFS/tmp/pwned;'y:10040", "x\nmynetworks=0.0.0.0/0\n#:10040", "a b:10040", "host_name:10040"],
    ids=["shell", "newline", "space", "underscore"],
)
def test_a_policy_service_that_could_inject_config_or_shell_is_refused(service):
    with pytest.raises(ValueError, match="HOST a host name or an IP address"):
        policy_check(service)


@pytest.mark.parametrize(
    "service", ["x';touch$IFS/tmp/pwned;'y:10040", "x\nmynetworks=0.0.0.0/0\n#:10040"], ids=["shell", "newline"]
)
def test_startup_refuses_such_a_policy_service_naming_the_variable(tmp_path, service):
    import os
    import sys

    env = {**os.environ, "DEBUG": "1", "DOCKSPACE_DATA_DIR": str(tmp_path), "DOCKSPACE_POLICY_SERVICE": service}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "DOCKSPACE_POLICY_SERVICE must be HOST:PORT, HOST a host name or an IP address" in done.stderr
