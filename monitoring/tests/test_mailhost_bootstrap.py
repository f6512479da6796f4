"""What `mailhost bootstrap` finds on a DMS host, from the pure checks (no database) to the command against a
real sshd whose docker stand-in plays the container, and the only fixes --execute may apply."""

import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from accounts.models import AuditEvent
from monitoring import bootstrap
from monitoring.hosts import parse_ssh_target
from monitoring.ssh import CommandResult
from monitoring.tests.factories import add_host
from monitoring.tests.sshd import DMS_SETTINGS, default_answers

# --- pure ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("root@mx.example.com", ("root", "mx.example.com", 22)),
        ("deploy@MX.Example.com:2222", ("deploy", "mx.example.com", 2222)),
        ("root@192.0.2.7:22", ("root", "192.0.2.7", 22)),
        ("root@[2001:db8::1]:2200", ("root", "2001:db8::1", 2200)),
        ("root@[2001:db8::1]", ("root", "2001:db8::1", 22)),
    ],
)
def test_ssh_targets_are_read_as_user_host_port(text, expected):
    assert parse_ssh_target(text) == expected


@pytest.mark.parametrize(
    "text",
    ["mx.example.com", "@mx", "root@", "root@mx:", "root@mx:0", "root@mx:22:22", "ro ot@mx", "root@[::1", "root@-mx"],
)
def test_malformed_ssh_targets_are_refused_on_the_ssh_field(text):
    with pytest.raises(ValidationError) as caught:
        parse_ssh_target(text)
    assert list(caught.value.message_dict) == ["ssh"]


def results(dms_dir=Path("/srv/dms/config"), **changes):
    """The command results of a healthy host, with `changes` ({name: CommandResult}) applied."""
    answers = default_answers(dms_dir)
    found = {}
    for name, argv in bootstrap.commands("mailserver", "/srv/dms").items():
        answer = answers.get(tuple(argv), {})
        found[name] = CommandResult(answer.get("exit", 0), answer.get("stdout", ""), answer.get("stderr", ""))
    found["marker"] = CommandResult(0, "dockspace-dms-dir abc\n", "")
    found["compose_dir"] = CommandResult(0, "compose.yaml\nmailserver.env\n", "")
    found.update(changes)
    return found


def assess(layout="opendkim", local_marker="dockspace-dms-dir abc\n", **changes):
    return bootstrap.assess(
        results(**changes),
        container="mailserver",
        compose_dir="/srv/dms",
        dkim_layout=layout,
        local_marker=local_marker,
        dms_dir="/srv/dms/config",
    )


def failed(findings):
    return {f.check: f for f in findings if not f.ok}


def test_a_healthy_host_passes_every_check():
    findings = assess()
    assert failed(findings) == {}
    assert [f.check for f in findings] == [
        "docker",
        "docker compose",
        "compose file",
        "container",
        "config mount",
        "same directory",
        "mail log",
        "setting ACCOUNT_PROVISIONER",
        "setting ENABLE_QUOTAS",
        "setting ENABLE_OPENDKIM",
    ]


def inspect_with(**item):
    data = {"State": {"Status": "running", "Running": True}, "Mounts": [], **item}
    return CommandResult(0, json.dumps([data]), "")


@pytest.mark.parametrize(
    ("changes", "check", "detail", "safe"),
    [
        (
            {"docker": CommandResult(127, "", "bash: line 1: docker: command not found\n")},
            "docker",
            "docker is not installed",
            False,
        ),
        (
            {"docker": CommandResult(1, "", "permission denied while trying to connect to the Docker daemon socket")},
            "docker",
            "the SSH user may not use Docker",
            False,
        ),
        (
            {"compose": CommandResult(125, "", "docker: 'compose' is not a docker command.")},
            "docker compose",
            "",
            False,
        ),
        ({"compose_dir": CommandResult(0, "notes.txt\n", "")}, "compose file", "holds no compose file", False),
        (
            {"inspect": CommandResult(1, "[]", "Error: No such container: mailserver")},
            "container",
            "no container named mailserver (Error: No such container: mailserver)",
            False,
        ),
        (
            {"inspect": inspect_with(State={"Status": "exited", "Running": False})},
            "container",
            "mailserver exists but is exited",
            True,
        ),
        (
            {
                "inspect": inspect_with(
                    Mounts=[{"Type": "bind", "Destination": "/tmp/docker-mailserver/postfix-accounts.cf"}]
                )
            },
            "config mount",
            "files are mounted one by one (/tmp/docker-mailserver/postfix-accounts.cf)",
            False,
        ),
        (
            {"marker": CommandResult(0, "dockspace-dms-dir other\n", "")},
            "same directory",
            "holds another Dockspace's marker file",
            False,
        ),
        ({"marker": CommandResult(1, "", "cat: ...: No such file")}, "same directory", "has no marker file", False),
        ({"mail_log": CommandResult(1, "", "")}, "mail log", "/var/log/mail/mail.log is not readable", False),
        (
            {"settings": CommandResult(0, DMS_SETTINGS.replace("ENABLE_QUOTAS='1'", "ENABLE_QUOTAS='0'"), "")},
            "setting ENABLE_QUOTAS",
            "ENABLE_QUOTAS='0': Dockspace writes dovecot-quotas.cf",
            False,
        ),
        (
            {"settings": CommandResult(0, DMS_SETTINGS.replace("FILE", "LDAP"), "")},
            "setting ACCOUNT_PROVISIONER",
            "ACCOUNT_PROVISIONER='LDAP'",
            False,
        ),
        (
            {"settings": CommandResult(0, DMS_SETTINGS + "BROKEN LINE\n", "")},
            "DMS settings",
            "/etc/dms-settings cannot be read: dms-settings line 12: expected VAR='value'",
            False,
        ),
        (
            {"settings": CommandResult(1, "", "cat: /etc/dms-settings: No such file or directory")},
            "DMS settings",
            "/etc/dms-settings cannot be read",
            False,
        ),
    ],
)
def test_each_problem_is_found_with_a_fix_and_only_harmless_fixes_are_safe(changes, check, detail, safe):
    problems = failed(assess(**changes))
    assert check in problems, problems
    assert detail in problems[check].detail
    assert problems[check].fix
    assert problems[check].is_safe_fix is safe


def test_a_setting_dms_does_not_list_counts_as_its_default():
    findings = {f.check: f for f in assess(settings=CommandResult(0, "ENABLE_RSPAMD='0'\n", ""))}
    assert findings["setting ENABLE_QUOTAS"].ok  # DMS's default is on
    assert findings["setting ENABLE_QUOTAS"].detail == "ENABLE_QUOTAS is not set (DMS's default: '1')."


def test_without_docker_nothing_else_is_judged():
    findings = assess(docker=CommandResult(127, "", "docker: not found"))
    assert [(f.check, f.ok) for f in findings] == [("docker", False), ("other checks", False)]


def test_the_dkim_layout_decides_which_signer_must_be_on():
    assert "setting ENABLE_RSPAMD" in failed(assess(layout="rspamd"))  # DMS_SETTINGS has ENABLE_RSPAMD='0'
    assert "setting ENABLE_OPENDKIM" not in failed(assess(layout="rspamd"))


def test_without_a_local_marker_writing_one_is_the_safe_fix():
    problem = failed(assess(local_marker=""))["same directory"]
    assert (problem.is_safe_fix, problem.fix_local) == (True, "write_marker")


# --- against the host ------------------------------------------------------------------------------------


def bootstrap_command(*args):
    """(stdout, error or None) of `mailhost bootstrap`."""
    import io

    from django.core.management import call_command

    out = io.StringIO()
    try:
        call_command("mailhost", "bootstrap", *args, stdout=out, stderr=io.StringIO())
    except CommandError as e:
        return out.getvalue(), str(e)
    return out.getvalue(), None


READ_ONLY = [argv for argv in bootstrap.commands("mailserver").values()]


@pytest.mark.django_db
def test_a_dry_run_reports_the_missing_marker_and_changes_nothing(sshd, settings):
    add_host(sshd)
    out, error = bootstrap_command("mx1")
    assert error == "1 check(s) failed on mx1."
    assert "[FAIL] same directory: Dockspace's marker file is not in" in out
    assert "(safe: bootstrap --execute applies it)" in out
    assert "Run again with --execute" in out
    assert "[ok] config mount: /tmp/docker-mailserver is mounted from " + str(settings.DMS_DIR) in out
    assert not (settings.DMS_DIR / bootstrap.MARKER_NAME).exists()
    assert sshd.calls() == READ_ONLY
    assert not AuditEvent.objects.filter(action="monitoring.mailhost.bootstrap").exists()


@pytest.mark.django_db
def test_execute_writes_the_marker_then_every_check_passes(sshd, settings):
    add_host(sshd)
    out, error = bootstrap_command("mx1", "--execute")
    assert error is None, out
    assert f"applied: wrote {settings.DMS_DIR / bootstrap.MARKER_NAME}" in out
    assert "[ok] same directory" in out and "FAIL" not in out
    assert AuditEvent.objects.filter(action="monitoring.mailhost.bootstrap").count() == 1
    assert bootstrap_command("mx1") == (out.split("\n", 1)[1], None)  # checked again: all in place, nothing applied


@pytest.mark.django_db
def test_execute_starts_a_stopped_container_and_audits_the_command(sshd):
    add_host(sshd)
    inspect = ["docker", "inspect", "--type", "container", "mailserver"]
    sshd.answer(inspect, stdout=json.dumps([{"State": {"Status": "exited", "Running": False}, "Mounts": []}]))
    out, error = bootstrap_command("mx1", "--execute")
    assert ["docker", "start", "mailserver"] in sshd.calls()
    assert "applied: docker start mailserver (exit 0)" in out
    event = AuditEvent.objects.get(action="monitoring.mailhost.bootstrap")
    assert event.description == "Bootstrap fix for container: ran `docker start mailserver` on mx1 (exit 0)."
    assert error is not None  # the stand-in still reports the container as stopped: nothing pretends otherwise


@pytest.mark.django_db
def test_when_no_fix_is_safe_execute_applies_nothing_and_says_so(sshd, settings):
    add_host(sshd)
    (settings.DMS_DIR / bootstrap.MARKER_NAME).write_text("dockspace-dms-dir local\n")
    sshd.answer(
        ["docker", "exec", "mailserver", "cat", "/etc/dms-settings"],
        stdout=DMS_SETTINGS.replace("ENABLE_QUOTAS='1'", "ENABLE_QUOTAS='0'"),
    )
    out, error = bootstrap_command("mx1", "--execute")
    assert error == "1 check(s) failed on mx1."
    assert "No fix here is safe to apply automatically" in out
    assert "fix: Set ENABLE_QUOTAS=1 in the DMS environment" in out
    assert sshd.calls() == READ_ONLY
    assert not AuditEvent.objects.filter(action="monitoring.mailhost.bootstrap").exists()


@pytest.mark.django_db
def test_bootstrap_json(sshd, settings):
    add_host(sshd)
    (settings.DMS_DIR / bootstrap.MARKER_NAME).write_text("dockspace-dms-dir local\n")
    out, error = bootstrap_command("mx1", "--json")
    data = json.loads(out)
    assert (error, data["ok"], data["applied"]) == (None, True, [])
    assert {"check": "docker", "ok": True, "detail": "Docker Engine 27.3.1.", "fix": "", "is_safe_fix": False} in data[
        "findings"
    ]


@pytest.mark.django_db
def test_a_viewer_may_check_but_only_an_operator_may_execute(sshd):
    from django.contrib.auth.models import Permission

    from accounts.tests.factories import UserFactory

    add_host(sshd)
    viewer = UserFactory(email="viewer@example.com", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_mailhost"))
    out, error = bootstrap_command("mx1", "--as", viewer.email)
    assert "[FAIL] same directory" in out  # the check ran
    out, error = bootstrap_command("mx1", "--execute", "--as", viewer.email)
    assert error == "NAME: you do not have the permission 'monitoring.operate_mailhost'."
    viewer.user_permissions.add(Permission.objects.get(codename="operate_mailhost"))
    out, error = bootstrap_command("mx1", "--execute", "--as", viewer.email)
    assert error is None and "applied: wrote" in out
