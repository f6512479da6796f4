"""manage.py mailhost against a real sshd: adding a host only after its host key is trusted, listing, the
default host, and the actions (recreate, restart, reload) as dry runs and executed, audited with the exact command."""

import json

import pytest
from django.core.management.base import CommandError

from accounts.models import AuditEvent
from monitoring.hosts import mailhosts_need_restart
from monitoring.models import MailHost
from monitoring.tests.factories import add_host, run
from monitoring.tests.sshd import COMPOSE_DIR, COMPOSE_LABELS, compose_up_argv, labels_argv

pytestmark = pytest.mark.django_db


def refused(*args):
    """Run a command that must fail; its message, after checking that no host row changed."""
    before = list(MailHost.objects.values_list())
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert list(MailHost.objects.values_list()) == before
    return str(caught.value)


def add(sshd, name="mx1", *more):
    return run("mailhost", "add", name, "--ssh", sshd.target, "--key", str(sshd.keys["user"]), *more)


def test_add_without_trust_prints_the_offered_fingerprint_and_stores_nothing(sshd):
    out = add(sshd)
    assert f"{sshd.target} offers the host key {sshd.fingerprint()} (ssh-ed25519)." in out
    assert f"--trust {sshd.fingerprint()}" in out
    assert "Nothing was stored" in out
    assert not MailHost.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="monitoring.").exists()


def test_add_with_the_offered_fingerprint_pins_it_and_the_first_host_is_the_default(sshd):
    out = add(sshd, "mx1", "--trust", sshd.fingerprint(), "--container", "dms", "--mail-volume", "/srv/mail")
    assert out.strip() == (
        f"Added mx1 ({sshd.user}@127.0.0.1:{sshd.port}) with host key {sshd.fingerprint()} pinned. "
        "It is the default host."
    )
    host = MailHost.objects.get()
    assert (host.host_key_fingerprint, host.host_key_type, host.is_default) == (sshd.fingerprint(), "ssh-ed25519", True)
    assert (host.container, host.mail_volume, host.key_path) == ("dms", "/srv/mail", str(sshd.keys["user"]))
    event = AuditEvent.objects.get(action="monitoring.mailhost.add")
    assert (event.actor_label, event.target_label) == ("manage.py mailhost", "mx1")
    assert sshd.fingerprint() in event.description
    assert "PRIVATE KEY" not in event.description


def test_a_trusted_fingerprint_that_is_not_the_offered_one_is_refused_naming_both(sshd):
    other = sshd.fingerprint("second")
    message = refused("mailhost", "add", "mx1", "--ssh", sshd.target, "--key", str(sshd.keys["user"]), "--trust", other)
    assert message.startswith("--trust: ")
    assert sshd.fingerprint("first") in message and other in message and "nothing was stored" in message


def test_a_key_the_host_refuses_is_named_and_nothing_is_stored(sshd):
    message = refused(
        "mailhost",
        "add",
        "mx1",
        "--ssh",
        sshd.target,
        "--key",
        str(sshd.keys["stranger"]),
        "--trust",
        sshd.fingerprint(),
    )
    assert message == f"--key: 127.0.0.1:{sshd.port} refused the key (authentication failed)."


def test_a_world_readable_key_file_is_refused_with_the_fix_and_nothing_is_stored(sshd, tmp_path, settings):
    settings.MAILHOST_SSH_KEY_DIR = tmp_path
    key = tmp_path / "mx1_ed25519"
    key.write_text(sshd.keys["user"].read_text())
    key.chmod(0o644)
    message = refused("mailhost", "add", "mx1", "--ssh", sshd.target, "--key", str(key))
    assert message == (
        f"--key: the key file {key} may be read or written by group or others (mode 0644); a private key must be "
        f"private to Dockspace's user: run chmod 600 {key}."
    )
    key.chmod(0o600)  # positive control: the fix the message names works
    assert f"offers the host key {sshd.fingerprint()}" in run(
        "mailhost", "add", "mx1", "--ssh", sshd.target, "--key", str(key)
    )


def test_the_key_may_come_from_the_environment_and_is_never_stored(sshd, monkeypatch):
    key_text = sshd.keys["user"].read_text()
    monkeypatch.setenv("DOCKSPACE_SSH_KEY_MX1", key_text)
    trust = ["--trust", sshd.fingerprint()]
    run("mailhost", "add", "mx1", "--ssh", sshd.target, "--key-env", "DOCKSPACE_SSH_KEY_MX1", *trust)
    host = MailHost.objects.get()
    assert (host.key_path, host.key_env) == ("", "DOCKSPACE_SSH_KEY_MX1")
    assert key_text.splitlines()[1] not in str(list(MailHost.objects.values_list()))
    assert "environment variable DOCKSPACE_SSH_KEY_MX1" in run("mailhost", "show", "mx1")
    monkeypatch.delenv("DOCKSPACE_SSH_KEY_MX1")
    message = refused("mailhost", "restart", "mx1", "--execute")
    assert message == (
        "the environment variable DOCKSPACE_SSH_KEY_MX1 (or DOCKSPACE_SSH_KEY_MX1_FILE) is not set in Dockspace's "
        "environment."
    )


def test_a_host_whose_key_changed_after_it_was_added_runs_nothing(sshd):
    add_host(sshd)
    sshd.restart(host_key="second")
    message = refused("mailhost", "restart", "mx1", "--execute")
    assert "host key" in message and sshd.fingerprint("first") in message and sshd.fingerprint("second") in message
    assert sshd.calls() == []
    event = AuditEvent.objects.get(action="monitoring.mailhost.restart")
    assert "`docker restart mailserver` was not run on mx1" in event.description


def test_repin_shows_the_new_key_then_pins_only_the_fingerprint_checked_and_keeps_the_host(sshd):
    host = add_host(sshd)
    host.notes = "rack 4"
    host.save()
    sshd.restart(host_key="second")
    shown = run("mailhost", "repin", "mx1")
    assert f"offers the host key {sshd.fingerprint('second')}" in shown
    assert f"{sshd.fingerprint('first')} is pinned" in shown and "Nothing was changed" in shown
    wrong = refused("mailhost", "repin", "mx1", "--trust", sshd.fingerprint("first"))
    assert f"--trust: {sshd.target} offers the host key {sshd.fingerprint('second')}" in wrong
    host.refresh_from_db()
    assert host.host_key_fingerprint == sshd.fingerprint("first")

    run("mailhost", "repin", "mx1", "--trust", sshd.fingerprint("second"))
    host.refresh_from_db()
    assert host.host_key_fingerprint == sshd.fingerprint("second") and host.notes == "rack 4"
    run("mailhost", "restart", "mx1", "--execute")  # the new key is accepted: the command runs
    assert sshd.calls() == [["docker", "restart", "mailserver"]]
    assert AuditEvent.objects.filter(action="monitoring.mailhost.repin").count() == 1


def test_repin_of_a_host_still_offering_its_pinned_key_says_there_is_nothing_to_repin(sshd):
    host = add_host(sshd)
    expected = f"{sshd.target} offers the pinned key {sshd.fingerprint('first')}; nothing to re-pin."
    assert run("mailhost", "repin", "mx1").strip() == expected
    assert run("mailhost", "repin", "mx1", "--trust", sshd.fingerprint("first")).strip() == expected
    host.refresh_from_db()
    assert host.host_key_fingerprint == sshd.fingerprint("first")
    assert not AuditEvent.objects.filter(action="monitoring.mailhost.repin").exists()
    sshd.restart(host_key="second")  # positive control: a changed key is still offered for re-pinning
    assert "Nothing was changed" in run("mailhost", "repin", "mx1")


OUTSIDE = "must be inside the SSH key directory /keys (DOCKSPACE_SSH_KEY_DIR; symbolic links are followed)"
PREFIX = "the key variable's name must start with DOCKSPACE_SSH_KEY_"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ssh", "nobody-at-all", "--key", "/keys/k"], "--ssh: give the SSH target as USER@HOST"),
        (["--ssh", "root@host:99999", "--key", "/keys/k"], "--ssh: '99999' is not a port (1 to 65535)."),
        (
            ["--ssh", "root@bad_host!", "--key", "/keys/k"],
            "--ssh: 'bad_host!' is not a host name or IP address: give an IP address",
        ),
        (["--ssh", "root@mx.example.com", "--key", "id_ed25519"], "--key: the key file must be an absolute path"),
        (["--ssh", "root@mx.example.com", "--key", "/etc/passwd"], f"--key: the key file {OUTSIDE}: /etc/passwd is"),
        (["--ssh", "root@mx.example.com", "--key", "/keys/../etc/ssl/x.pem"], f"--key: the key file {OUTSIDE}: /etc/"),
        (["--ssh", "root@mx.example.com", "--key", "/keys"], f"--key: the key file {OUTSIDE}: /keys is not."),
        (["--ssh", "root@mx.example.com", "--key", "/keys-other/k"], f"--key: the key file {OUTSIDE}"),
        (["--ssh", "root@mx.example.com", "--key-env", "1BAD"], f"--key-env: '1BAD' is refused: {PREFIX}"),
        (["--ssh", "root@mx.example.com", "--key-env", "SECRET_KEY"], f"--key-env: 'SECRET_KEY' is refused: {PREFIX}"),
        (["--ssh", "root@mx.example.com", "--key-env", "DOCKSPACE_SSH_KEY_"], "--key-env: 'DOCKSPACE_SSH_KEY_' is"),
        (["--ssh", "root@mx.example.com", "--key", "/keys/k", "--container=-rm"], "--container: '-rm' is not a"),
        (
            ["--ssh", "root@mx.example.com", "--key", "/keys/k", "--mail-volume", "srv"],
            "--mail-volume: the mail volume",
        ),
        (
            ["--ssh", "root@mx.example.com", "--key", "/keys/k", "--mail-volume", "/srv/my mail"],
            "--mail-volume: an absolute",
        ),
        (
            ["--ssh", "root@mx.example.com", "--key", "/keys/k", "--compose-dir", "/srv/dms'$(touch x)'"],
            "--compose-dir: an absolute path (starting with '/') of letters, digits and _ . / @ + = , : - only",
        ),
        (
            ["--ssh", "root@mx.example.com", "--key", "/keys/nonexistent"],
            "--key: the key file /keys/nonexistent does not exist",
        ),
        (["--ssh", "root@mx.example.com", "--key", "/keys/k", "--trust", "abc"], "--trust: 'abc' is not a host key"),
    ],
)
def test_bad_input_names_the_option_and_the_rule(settings, args, message):
    settings.MAILHOST_SSH_KEY_DIR = "/keys"
    assert message in refused("mailhost", "add", "mx1", *args)


def test_a_key_file_must_be_in_the_key_directory_symbolic_links_followed(sshd, settings, tmp_path):
    settings.MAILHOST_SSH_KEY_DIR = tmp_path / "keys"
    settings.MAILHOST_SSH_KEY_DIR.mkdir()
    leading_out = settings.MAILHOST_SSH_KEY_DIR / "mx1"
    leading_out.symlink_to(sshd.keys["user"])  # a real key, but outside this directory
    trust = ["--trust", sshd.fingerprint()]
    for path, shown in [(sshd.keys["user"], sshd.keys["user"]), (leading_out, leading_out)]:
        message = refused("mailhost", "add", "mx1", "--ssh", sshd.target, "--key", str(path), *trust)
        assert message == (
            f"--key: the key file must be inside the SSH key directory {tmp_path / 'keys'} (DOCKSPACE_SSH_KEY_DIR; "
            f"symbolic links are followed): {shown} is not."
        )
    # Positive control: the same key as a file in the directory (or a link to one there) is accepted.
    inside = settings.MAILHOST_SSH_KEY_DIR / "mx1_ed25519"
    inside.write_text(sshd.keys["user"].read_text())
    inside.chmod(0o600)
    (settings.MAILHOST_SSH_KEY_DIR / "current").symlink_to(inside)
    run("mailhost", "add", "mx1", "--ssh", sshd.target, "--key", str(settings.MAILHOST_SSH_KEY_DIR / "current"), *trust)
    assert MailHost.objects.get().key_path == str(settings.MAILHOST_SSH_KEY_DIR / "current")
    assert refused("mailhost", "update", "mx1", "--key", str(leading_out)).startswith("--key: the key file must be")
    run("mailhost", "update", "mx1", "--key", str(inside))
    assert MailHost.objects.get().key_path == str(inside)


def test_a_key_variable_must_be_named_for_ssh_keys(sshd, monkeypatch):
    key_text = sshd.keys["user"].read_text()
    monkeypatch.setenv("MX1_SSH_KEY", key_text)  # holds a working key, but any variable could be named this way
    trust = ["--trust", sshd.fingerprint()]
    message = refused("mailhost", "add", "mx1", "--ssh", sshd.target, "--key-env", "MX1_SSH_KEY", *trust)
    assert message == (
        f"--key-env: 'MX1_SSH_KEY' is refused: {PREFIX} (then letters, digits, '_'; e.g. DOCKSPACE_SSH_KEY_MX1), "
        "so that no other variable of Dockspace's is read as a key."
    )
    # Positive control: the same key under a name with the prefix.
    monkeypatch.setenv("DOCKSPACE_SSH_KEY_MX1", key_text)
    run("mailhost", "add", "mx1", "--ssh", sshd.target, "--key-env", "DOCKSPACE_SSH_KEY_MX1", *trust)
    assert MailHost.objects.get().key_env == "DOCKSPACE_SSH_KEY_MX1"
    assert refused("mailhost", "update", "mx1", "--key-env", "SECRET_KEY").startswith("--key-env: 'SECRET_KEY' is")
    assert MailHost.objects.get().key_env == "DOCKSPACE_SSH_KEY_MX1"


def test_the_help_says_where_keys_go(settings, capsys):
    settings.MAILHOST_SSH_KEY_DIR = "/srv/dockspace/ssh-keys"
    with pytest.raises(SystemExit):
        run("mailhost", "add", "--help")
    shown = " ".join(capsys.readouterr().out.split())
    assert "inside /srv/dockspace/ssh-keys (DOCKSPACE_SSH_KEY_DIR)" in shown
    assert "starting with DOCKSPACE_SSH_KEY_" in shown


def test_a_bad_name_is_refused_naming_the_rule(sshd):
    message = refused("mailhost", "add", "MX 1!", "--ssh", sshd.target, "--key", str(sshd.keys["user"]))
    assert (
        message
        == "NAME: a host name here is 1 to 63 lower-case letters, digits and hyphens, starting with a letter or digit."
    )


def test_a_second_host_with_the_same_name_is_refused(sshd):
    add_host(sshd)
    message = refused(
        "mailhost", "add", "mx1", "--ssh", sshd.target, "--key", str(sshd.keys["user"]), "--trust", sshd.fingerprint()
    )
    assert message == "NAME: a mail host named mx1 already exists."


def test_an_unreachable_host_is_explained_without_a_traceback(sshd):
    message = refused("mailhost", "add", "mx1", "--ssh", "root@127.0.0.1:1", "--key", str(sshd.keys["user"]))
    assert message == "--ssh: 127.0.0.1:1 refused the connection or cannot be reached."


def test_list_and_show_print_json(sshd):
    add_host(sshd, "mx1")
    add_host(sshd, "mx2", container="dms2")
    rows = json.loads(run("mailhost", "list", "--json"))
    assert [(r["name"], r["container"], r["is_default"]) for r in rows] == [
        ("mx1", "mailserver", True),
        ("mx2", "dms2", False),
    ]
    shown = json.loads(run("mailhost", "show", "mx2", "--json"))
    assert shown["host_key_fingerprint"] == sshd.fingerprint()
    assert shown["ssh"] == f"{sshd.user}@127.0.0.1:{sshd.port}"
    assert shown["key"] == f"file {sshd.keys['user']}"
    listed = run("mailhost", "list").splitlines()
    assert listed[0].split() == ["NAME", "SSH", "CONTAINER", "STATUS", "FLAGS"]
    assert [line.split()[0] for line in listed[1:]] == ["mx1", "mx2"] and listed[1].split()[-1] == "default"
    assert refused("mailhost", "show", "mx9") == "NAME: no mail host 'mx9'."


def test_default_moves_and_removing_the_default_promotes_the_oldest_other_host(sshd):
    add_host(sshd, "mx1")
    add_host(sshd, "mx2")
    add_host(sshd, "mx3")
    run("mailhost", "default", "mx3")
    assert list(MailHost.objects.filter(is_default=True).values_list("name", flat=True)) == ["mx3"]
    assert "Removed mx3" in run("mailhost", "remove", "mx3")
    assert list(MailHost.objects.filter(is_default=True).values_list("name", flat=True)) == ["mx1"]
    assert AuditEvent.objects.filter(action="monitoring.mailhost.remove", target_label="mx3").exists()


def test_restart_is_a_dry_run_until_execute(sshd):
    add_host(sshd)
    out = run("mailhost", "restart", "mx1")
    assert "would run:\n  docker restart mailserver" in out and "Add --execute" in out
    assert sshd.calls() == []
    assert not AuditEvent.objects.filter(action="monitoring.mailhost.restart").exists()
    out = run("mailhost", "restart", "mx1", "--execute")
    assert "Ran on mx1: docker restart mailserver (exit 0)" in out
    assert sshd.calls() == [["docker", "restart", "mailserver"]]
    event = AuditEvent.objects.get(action="monitoring.mailhost.restart")
    assert event.description == "Restart: ran `docker restart mailserver` on mx1 (exit 0)."


def test_a_failing_restart_exits_non_zero_with_the_error_and_is_audited(sshd):
    add_host(sshd)
    sshd.answer(["docker", "restart", "mailserver"], stderr="Error response from daemon: No such container\n", exit=1)
    message = refused("mailhost", "restart", "mx1", "--execute")
    assert message == "docker restart mailserver failed on mx1 with exit status 1."
    assert (
        "exit 1: Error response from daemon" in AuditEvent.objects.get(action="monitoring.mailhost.restart").description
    )


@pytest.mark.parametrize(
    ("service", "argv"),
    [("postfix", ["postfix", "reload"]), ("dovecot", ["doveadm", "reload"])],
)
def test_reload_runs_the_service_reload_in_the_container(sshd, service, argv):
    add_host(sshd)
    assert f"docker exec mailserver {' '.join(argv)}" in run("mailhost", "reload", "mx1", service)
    assert sshd.calls() == []
    run("mailhost", "reload", "mx1", service, "--execute")
    assert sshd.calls() == [["docker", "exec", "mailserver", *argv]]
    assert (
        f"`docker exec mailserver {' '.join(argv)}`"
        in AuditEvent.objects.get(action="monitoring.mailhost.reload").description
    )


def test_reload_of_another_service_is_refused(sshd):
    add_host(sshd)
    assert (
        refused("mailhost", "reload", "mx1", "rspamd")
        == "SERVICE: 'rspamd' cannot be reloaded; choose postfix or dovecot."
    )


def test_with_sudo_the_audit_records_the_sudo_command(sshd):
    add_host(sshd, use_sudo=True)
    run("mailhost", "restart", "mx1", "--execute")
    assert (
        "`sudo -n docker restart mailserver`"
        in AuditEvent.objects.get(action="monitoring.mailhost.restart").description
    )


def test_a_sudo_password_prompt_is_explained(sshd):
    add_host(sshd, use_sudo=True)
    sshd.set_sudo("password")
    message = refused("mailhost", "restart", "mx1", "--execute")
    assert message.startswith(f"the SSH user {sshd.user} needs passwordless sudo for docker on mx1")


def test_update_changes_the_container_and_refuses_two_key_sources(sshd):
    add_host(sshd)
    assert "Updated mx1." in run("mailhost", "update", "mx1", "--container", "dms", "--sudo")
    host = MailHost.objects.get()
    assert (host.container, host.use_sudo) == ("dms", True)
    assert refused("mailhost", "update", "mx1").startswith("nothing to change")
    assert refused("mailhost", "update", "mx1", "--key", "relative").startswith(
        "--key: the key file must be an absolute"
    )


# --- restart needed ------------------------------------------------------------------------------------


def test_a_dkim_key_change_flags_every_host_and_only_a_recreate_clears_it(sshd, settings):
    from mail import services
    from mail.dms.sync import dms_sync
    from mail.models import DmsSyncState
    from mail.tests.factories import make_domain, make_mailbox

    settings.DKIM_LAYOUT = "opendkim"
    add_host(sshd, "mx1", compose_dir=COMPOSE_DIR)
    add_host(sshd, "mx2", compose_dir=COMPOSE_DIR)
    domain = make_domain("example.com")
    make_mailbox("bob@example.com")
    dms_sync()
    assert not MailHost.objects.filter(restart_needed=True).exists()  # positive control: no DKIM change yet
    services.dkim_generate(domain=domain)
    dms_sync()
    assert sorted(MailHost.objects.filter(restart_needed=True).values_list("name", flat=True)) == ["mx1", "mx2"]
    reason = MailHost.objects.get(name="mx1").restart_reason
    assert "OpenDKIM" in reason and "new container" in reason
    assert "restart-needed" in run("mailhost", "list")

    # A plain restart runs, but DMS would skip its set-up: the flag stays, and the output says what to do.
    out = run("mailhost", "restart", "mx1", "--execute")
    assert "'restart needed' stays" in out and "manage.py mailhost recreate mx1" in out
    assert sshd.calls() == [["docker", "restart", "mailserver"]]
    assert MailHost.objects.get(name="mx1").restart_needed is True

    run("mailhost", "recreate", "mx1", "--execute")
    assert sshd.calls()[-1] == compose_up_argv()
    assert list(MailHost.objects.filter(restart_needed=True).values_list("name", flat=True)) == ["mx2"]
    assert DmsSyncState.load().restart_needed is True  # mx2 still needs it
    run("mailhost", "recreate", "mx2")  # a dry run clears nothing
    assert MailHost.objects.get(name="mx2").restart_needed is True
    run("mailhost", "recreate", "mx2", "--execute")
    assert not MailHost.objects.filter(restart_needed=True).exists()
    assert DmsSyncState.load().restart_needed is False


# --- recreate --------------------------------------------------------------------------------------------


def test_recreate_reads_the_compose_labels_and_is_a_dry_run_until_execute(sshd):
    add_host(sshd, compose_dir=COMPOSE_DIR)
    mailhosts_need_restart(reason="OpenDKIM keys or tables changed")
    up = " ".join(compose_up_argv())
    out = run("mailhost", "recreate", "mx1")
    assert "mailserver is service mailserver of compose project dms" in out
    assert f"would run:\n  {up}" in out and "Add --execute" in out
    assert sshd.calls() == [labels_argv()]  # read-only: the labels, nothing else
    assert not AuditEvent.objects.filter(action="monitoring.mailhost.recreate").exists()
    assert MailHost.objects.get().restart_needed is True

    out = run("mailhost", "recreate", "mx1", "--execute")
    assert f"Ran on mx1: {up} (exit 0)" in out and "Container mailserver  Recreated" in out
    assert "'restart needed' is cleared" in out
    assert sshd.calls()[1:] == [labels_argv(), compose_up_argv()]
    assert MailHost.objects.get().restart_needed is False
    event = AuditEvent.objects.get(action="monitoring.mailhost.recreate")
    assert event.description == (
        f"Recreate on mx1 (exit 0): ran `{up}` after reading the compose labels with "
        "`docker inspect --type container --format '{{json .Config.Labels}}' mailserver`."
    )


def test_recreate_passes_the_env_files_and_every_compose_file_the_container_was_made_with(sshd):
    add_host(sshd, compose_dir=COMPOSE_DIR)
    files = (f"{COMPOSE_DIR}/compose.yaml", f"{COMPOSE_DIR}/compose.override.yaml")
    sshd.set_labels(
        {
            **COMPOSE_LABELS,
            "com.docker.compose.project.config_files": ",".join(files),
            "com.docker.compose.project.environment_file": f"{COMPOSE_DIR}/.env",
        }
    )
    out = run("mailhost", "recreate", "mx1")
    assert (
        f"--file {files[0]} --file {files[1]} --env-file {COMPOSE_DIR}/.env up --detach --force-recreate --no-deps "
        "mailserver" in out
    )


def test_without_a_compose_directory_recreate_is_refused_runs_nothing_and_keeps_the_flag(sshd):
    add_host(sshd)  # no --compose-dir
    mailhosts_need_restart(reason="OpenDKIM keys or tables changed")
    message = refused("mailhost", "recreate", "mx1", "--execute")
    assert message.startswith("mx1 has no compose directory, so Dockspace cannot recreate its container")
    assert "recreate the container the way it was created" in message
    assert "docker compose up -d --force-recreate mailserver" in message
    assert "mailhost update mx1 --compose-dir DIR" in message
    assert sshd.calls() == []  # not even a restart in its place
    assert MailHost.objects.get().restart_needed is True
    # Positive control: with the compose directory set, the same command recreates it and clears the flag.
    run("mailhost", "update", "mx1", "--compose-dir", COMPOSE_DIR)
    run("mailhost", "recreate", "mx1", "--execute")
    assert sshd.calls() == [labels_argv(), compose_up_argv()]
    assert MailHost.objects.get().restart_needed is False


def test_a_container_without_compose_labels_is_refused_and_keeps_the_flag(sshd):
    add_host(sshd, compose_dir=COMPOSE_DIR)
    mailhosts_need_restart(reason="OpenDKIM keys or tables changed")
    sshd.set_labels(None)  # `docker run` without labels
    message = refused("mailhost", "recreate", "mx1", "--execute")
    assert "it has no compose labels" in message and "not created by docker compose" in message
    assert "recreate the container the way it was created" in message
    assert sshd.calls() == [labels_argv()]  # the look-up only
    assert MailHost.objects.get().restart_needed is True
    event = AuditEvent.objects.get(action="monitoring.mailhost.recreate")
    assert event.description.startswith("Recreate refused: Dockspace cannot recreate the container mailserver on mx1")


@pytest.mark.parametrize(
    ("label", "value", "said"),
    [
        ("com.docker.compose.service", "mailserver; rm -rf /", "not a service name Dockspace runs commands with"),
        ("com.docker.compose.service", "-mailserver", "not a service name Dockspace runs commands with"),
        ("com.docker.compose.project", "DMS $(id)", "not a compose project name"),
        ("com.docker.compose.project.config_files", "/srv/dms/compose.yaml;id", "characters Dockspace does not"),
        ("com.docker.compose.project.working_dir", "/opt/other", "not in /srv/dms, this host's compose directory"),
    ],
)
def test_a_label_outside_the_safe_rule_or_another_directory_is_refused_and_nothing_runs(sshd, label, value, said):
    add_host(sshd, compose_dir=COMPOSE_DIR)
    mailhosts_need_restart(reason="OpenDKIM keys or tables changed")
    sshd.set_labels({**COMPOSE_LABELS, label: value})
    message = refused("mailhost", "recreate", "mx1", "--execute")
    assert said in message and "Nothing was run and 'restart needed' stays" in message
    assert sshd.calls() == [labels_argv()]
    assert MailHost.objects.get().restart_needed is True


def test_a_failing_recreate_exits_non_zero_and_keeps_the_flag(sshd):
    add_host(sshd, compose_dir=COMPOSE_DIR)
    mailhosts_need_restart(reason="OpenDKIM keys or tables changed")
    sshd.answer(compose_up_argv(), stderr="no such service: mailserver\n", exit=1)
    message = refused("mailhost", "recreate", "mx1", "--execute")
    assert message == f"{' '.join(compose_up_argv())} failed on mx1 with exit status 1."
    assert MailHost.objects.get().restart_needed is True
    assert "exit 1: no such service" in AuditEvent.objects.get(action="monitoring.mailhost.recreate").description


def test_recreate_with_sudo_runs_both_commands_through_sudo(sshd):
    add_host(sshd, compose_dir=COMPOSE_DIR, use_sudo=True)
    run("mailhost", "recreate", "mx1", "--execute")
    assert sshd.calls() == [
        ["sudo", "-n", *labels_argv()],
        labels_argv(),
        ["sudo", "-n", *compose_up_argv()],
        compose_up_argv(),
    ]
    assert "`sudo -n docker compose --project-directory /srv/dms" in (
        AuditEvent.objects.get(action="monitoring.mailhost.recreate").description
    )


# --- who may ---------------------------------------------------------------------------------------------


@pytest.fixture
def operator():
    """Staff who may look at mail hosts and restart or reload them, but not add, change or remove them."""
    from django.contrib.auth.models import Permission

    from accounts.tests.factories import UserFactory

    staff = UserFactory(email="ops@example.com", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="monitoring", codename__in=["view_mailhost", "operate_mailhost"]
        )
    )
    return staff.email


@pytest.fixture
def viewer():
    from django.contrib.auth.models import Permission

    from accounts.tests.factories import UserFactory

    staff = UserFactory(email="viewer@example.com", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename="view_mailhost"))
    return staff.email


def test_staff_without_the_permission_are_refused_and_those_with_it_act(sshd, operator, viewer):
    add_host(sshd, compose_dir=COMPOSE_DIR)
    assert refused("mailhost", "restart", "mx1", "--execute", "--as", viewer) == (
        "NAME: you do not have the permission 'monitoring.operate_mailhost'."
    )
    assert refused("mailhost", "recreate", "mx1", "--as", viewer).endswith("'monitoring.operate_mailhost'.")
    assert refused("mailhost", "reload", "mx1", "--as", viewer).endswith("'monitoring.operate_mailhost'.")
    assert sshd.calls() == []
    # Positive control: the operator restarts; the audit names them.
    run("mailhost", "restart", "mx1", "--execute", "--as", operator)
    assert sshd.calls() == [["docker", "restart", "mailserver"]]
    event = AuditEvent.objects.get(action="monitoring.mailhost.restart")
    assert event.actor_label == "manage.py mailhost --as ops@example.com"
    run("mailhost", "recreate", "mx1", "--execute", "--as", operator)
    assert sshd.calls()[1:] == [labels_argv(), compose_up_argv()]
    # ...but may not remove the host or add one.
    assert refused("mailhost", "remove", "mx1", "--as", operator) == (
        "NAME: you do not have the permission 'monitoring.delete_mailhost'."
    )
    assert "monitoring.add_mailhost" in refused(
        "mailhost", "add", "mx2", "--ssh", sshd.target, "--key", str(sshd.keys["user"]), "--as", operator
    )


def test_as_someone_who_is_not_staff_is_refused():
    from accounts.tests.factories import UserFactory

    UserFactory(email="nobody@example.com")
    assert (
        refused("mailhost", "list", "--as", "nobody@example.com")
        == "--as: 'nobody@example.com' is not an active staff member."
    )


@pytest.mark.parametrize(
    "target", ["u@a..b", "u@...", f"u@{'x' * 64}.example.com", "u@[zz]", "u@[a..b]:22", "u@-mx.example.com"]
)
def test_a_host_that_is_neither_an_ip_address_nor_a_dns_name_is_refused_naming_ssh(target, monkeypatch):
    monkeypatch.setenv("DOCKSPACE_SSH_KEY_X", "not used")
    message = refused("mailhost", "add", "mx2", "--ssh", target, "--key-env", "DOCKSPACE_SSH_KEY_X")
    assert message.startswith("--ssh: ") and "is not a host name or IP address: give an IP address, or a DNS" in message


def test_ip_addresses_bracketed_or_not_and_dns_names_are_taken(sshd):
    # Positive control of the rule above: each is parsed and contacted (port 1: nothing listens).
    for target, where in [
        ("u@127.0.0.1:1", "127.0.0.1:1"),
        ("u@[::1]:1", "[::1]:1"),
        ("u@[127.0.0.1]:1", "127.0.0.1:1"),
    ]:
        message = refused("mailhost", "add", "mx2", "--ssh", target, "--key", str(sshd.keys["user"]))
        assert message.startswith(f"--ssh: {where} "), message
    assert "localhost" in refused("mailhost", "add", "mx2", "--ssh", "u@localhost:1", "--key", str(sshd.keys["user"]))


def test_a_stored_key_outside_the_rules_is_refused_when_used_and_the_check_names_the_host(sshd):
    from django.core.checks import run_checks

    add_host(sshd)
    assert "monitoring.W001" not in {problem.id for problem in run_checks(databases=["default"])}
    MailHost.objects.filter(name="mx1").update(key_path="/etc/passwd")  # an old row, a restored backup
    message = refused("mailhost", "restart", "mx1", "--execute")
    assert message.startswith("the key file must be inside the SSH key directory")
    assert sshd.calls() == []
    [warning] = [problem for problem in run_checks(databases=["default"]) if problem.id == "monitoring.W001"]
    assert warning.msg.startswith("Mail host mx1: the key file must be inside the SSH key directory")
    assert "mailhost update mx1 --key" in warning.hint
    # Positive control: the key put back where the rules allow, the host works and the warning is gone.
    run("mailhost", "update", "mx1", "--key", str(sshd.keys["user"]))
    run("mailhost", "restart", "mx1", "--execute")
    assert sshd.calls() == [["docker", "restart", "mailserver"]]
    assert "monitoring.W001" not in {problem.id for problem in run_checks(databases=["default"])}


def test_list_show_and_check_as_staff_without_the_permission_to_view_hosts_are_refused(sshd, viewer):
    from accounts.tests.factories import UserFactory

    add_host(sshd)
    UserFactory(email="mail-admin@example.com", is_staff=True)  # staff, but may not view mail hosts
    refusal = "you do not have the permission 'monitoring.view_mailhost'."
    assert refused("mailhost", "list", "--as", "mail-admin@example.com") == refusal
    assert refused("mailhost", "list", "--json", "--as", "mail-admin@example.com") == refusal
    assert refused("mailhost", "show", "mx1", "--as", "mail-admin@example.com") == f"NAME: {refusal}"
    assert refused("mailhost", "show", "nosuch", "--as", "mail-admin@example.com") == f"NAME: {refusal}"  # not "no..."
    assert refused("mailhost", "check", "mx1", "--as", "mail-admin@example.com") == f"NAME: {refusal}"
    assert sshd.calls() == []
    # Positive control: who may view mail hosts lists and shows them.
    assert [row["name"] for row in json.loads(run("mailhost", "list", "--json", "--as", viewer))] == ["mx1"]
    assert json.loads(run("mailhost", "show", "mx1", "--json", "--as", viewer))["name"] == "mx1"
    assert refused("mailhost", "show", "nosuch", "--as", viewer) == "NAME: no mail host 'nosuch'."
