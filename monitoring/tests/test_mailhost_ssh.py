"""monitoring.ssh against a real sshd on loopback: pinned host keys, only the configured key, fixed argument
lists, both output streams, timeouts, sudo -n, and one clear sentence for each way it fails."""

import time

import pytest

from dockspace.tests.tracing_stand_ins import record_spans
from dockspace.tracing import span
from monitoring import ssh
from monitoring.tests.factories import unsaved_host
from monitoring.tests.sshd import free_port

pytestmark = pytest.mark.django_db


def run(host, argv, **kwargs):
    with ssh.session(host) as session:
        return session.run(argv, **kwargs)


def refusal(host, argv=("docker", "ps")):
    with pytest.raises(ssh.SshError) as caught:
        run(host, list(argv))
    return caught.value


def test_first_contact_returns_the_host_key_fingerprint_openssh_shows(sshd):
    offered = ssh.fetch_host_key("127.0.0.1", sshd.port)
    assert offered.fingerprint == sshd.fingerprint("first")
    assert offered.type == "ssh-ed25519"
    assert "Accepted publickey" not in sshd.log()  # first contact authenticates nothing


def test_a_command_runs_with_its_arguments_exactly_as_given_never_through_a_shell(sshd, tmp_path):
    host = unsaved_host(sshd)
    planted = tmp_path / "planted"
    argv = ["docker", "exec", "mailserver", "echo", f"a b; touch {planted}", f"$(touch {planted})", "'q'", "`id`"]
    result = run(host, argv)
    assert sshd.calls() == [argv]
    assert result.exit_status == 1 and "no answer for" in result.stderr  # the stand-in got them, unanswered
    assert not planted.exists()


def test_exit_status_stdout_and_stderr_come_back_separately(sshd):
    host = unsaved_host(sshd)
    sshd.answer(["docker", "info"], stdout="out\n", stderr="err\n", exit=3)
    assert run(host, ["docker", "info"]) == ssh.CommandResult(3, "out\n", "err\n")


def test_megabytes_on_both_streams_neither_hang_nor_get_lost(sshd):
    host = unsaved_host(sshd)
    sshd.answer(["docker", "logs", "mailserver"], stdout="o" * 1023 + "\n", stderr="e" * 1023 + "\n", repeat=4096)
    result = run(host, ["docker", "logs", "mailserver"], timeout=60)
    assert (result.exit_status, len(result.stdout), len(result.stderr)) == (0, 4 * 2**20, 4 * 2**20)


def test_a_changed_host_key_is_refused_naming_both_fingerprints_and_nothing_runs(sshd):
    host = unsaved_host(sshd)
    assert run(host, ["docker", "restart", "mailserver"]).exit_status == 0  # positive control
    sshd.restart(host_key="second")
    error = refusal(host, ["docker", "restart", "mailserver"])
    assert error.kind == "host-key-changed"
    assert sshd.fingerprint("second") in error.message and sshd.fingerprint("first") in error.message
    assert "Nothing was run" in error.message
    assert sshd.calls() == [["docker", "restart", "mailserver"]]  # only the positive control's
    assert sshd.log().count("Accepted publickey") == 0  # the restarted server never saw an authentication


def test_a_host_key_of_another_type_is_refused_too(sshd):
    host = unsaved_host(sshd)
    sshd.restart(host_key="ecdsa")
    error = refusal(host)
    assert error.kind == "host-key-changed"
    assert sshd.fingerprint("ecdsa") in error.message and sshd.fingerprint("first") in error.message
    assert sshd.calls() == []


def test_a_key_the_host_does_not_know_fails_authentication(sshd):
    host = unsaved_host(sshd, key_path=str(sshd.keys["stranger"]))
    error = refusal(host)
    assert (error.kind, error.message) == ("auth", f"127.0.0.1:{sshd.port} refused the key (authentication failed).")
    assert sshd.calls() == []


def test_the_agent_and_default_keys_are_never_tried(sshd, monkeypatch, tmp_path):
    # An agent socket and ~/.ssh keys that would be accepted must not rescue a key the host refuses.
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519").write_text(sshd.keys["user"].read_text())
    host = unsaved_host(sshd, key_path=str(sshd.keys["stranger"]))
    assert refusal(host).kind == "auth"


def test_nothing_listening_is_unreachable(sshd):
    host = unsaved_host(sshd, ssh_port=free_port())
    error = refusal(host)
    assert error.kind == "unreachable"
    assert f"127.0.0.1:{host.ssh_port} refused the connection" in error.message


def test_a_port_that_never_speaks_ssh_times_out(sshd, silent_port, settings):
    settings.MAILHOST_SSH_TIMEOUT = 1
    host = unsaved_host(sshd, ssh_port=silent_port)
    started = time.monotonic()
    error = refusal(host)
    assert error.kind == "timeout"
    assert error.message == f"127.0.0.1:{silent_port} did not answer as an SSH server within 1 s."
    assert time.monotonic() - started < 5
    with pytest.raises(ssh.SshError) as first_contact:
        ssh.fetch_host_key("127.0.0.1", silent_port)
    assert first_contact.value.kind == "timeout"


def test_a_command_running_past_its_timeout_is_stopped_with_its_command_named(sshd):
    host = unsaved_host(sshd)
    sshd.answer(["docker", "exec", "mailserver", "postqueue", "-j"], sleep=10)
    started = time.monotonic()
    with pytest.raises(ssh.SshError) as caught:
        run(host, ["docker", "exec", "mailserver", "postqueue", "-j"], timeout=1)
    assert caught.value.kind == "timeout"
    assert caught.value.message == "`docker exec mailserver postqueue -j` did not finish within 1 s on mx1."
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "does not exist on the Dockspace machine"),
        (lambda d: _mkdir(d / "mx1"), "is a directory, not a key file"),
        (lambda d: _write(d / "notes.txt", "hello\n"), "does not hold a private key in OpenSSH or PEM format"),
    ],
)
def test_key_file_problems_are_named_without_touching_the_host(sshd, tmp_path, settings, make, message):
    settings.MAILHOST_SSH_KEY_DIR = tmp_path
    path = make(tmp_path)
    host = unsaved_host(sshd, key_path=str(path))
    error = refusal(host)
    assert error.kind == "key"
    assert error.message.startswith(f"the key file {path} ") and message in error.message
    assert sshd.calls() == []


def test_a_passphrase_protected_key_is_refused_with_the_reason(sshd, tmp_path, settings):
    import subprocess

    settings.MAILHOST_SSH_KEY_DIR = tmp_path
    key = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret pass", "-f", str(key)], check=True)
    error = refusal(unsaved_host(sshd, key_path=str(key)))
    assert (error.kind, "passphrase-protected" in error.message) == ("key", True)


def test_the_key_may_come_from_an_environment_variable(sshd, monkeypatch):
    monkeypatch.setenv("DOCKSPACE_SSH_KEY_MX1", sshd.keys["user"].read_text())
    host = unsaved_host(sshd, key_path="", key_env="DOCKSPACE_SSH_KEY_MX1")
    assert run(host, ["docker", "restart", "mailserver"]).stdout == "mailserver\n"


def test_or_from_the_file_its_NAME_FILE_variable_names(sshd, monkeypatch):
    monkeypatch.delenv("DOCKSPACE_SSH_KEY_MX1", raising=False)
    monkeypatch.setenv("DOCKSPACE_SSH_KEY_MX1_FILE", str(sshd.keys["user"]))
    host = unsaved_host(sshd, key_path="", key_env="DOCKSPACE_SSH_KEY_MX1")
    assert run(host, ["docker", "restart", "mailserver"]).exit_status == 0


def test_an_unset_key_variable_is_named_and_no_key_text_ever_appears_in_a_message(sshd, monkeypatch):
    monkeypatch.delenv("DOCKSPACE_SSH_KEY_MX1", raising=False)
    monkeypatch.delenv("DOCKSPACE_SSH_KEY_MX1_FILE", raising=False)
    error = refusal(unsaved_host(sshd, key_path="", key_env="DOCKSPACE_SSH_KEY_MX1"))
    assert (
        error.message
        == "the environment variable DOCKSPACE_SSH_KEY_MX1 (or DOCKSPACE_SSH_KEY_MX1_FILE) is not set in Dockspace's "
        "environment."
    )
    monkeypatch.setenv("DOCKSPACE_SSH_KEY_MX1", sshd.keys["user"].read_text()[:200])  # a truncated key
    error = refusal(unsaved_host(sshd, key_path="", key_env="DOCKSPACE_SSH_KEY_MX1"))
    assert error.kind == "key" and "PRIVATE KEY" not in error.message and "b3BlbnNzaC1rZXk" not in error.message


def test_with_sudo_docker_runs_as_sudo_n_and_other_commands_do_not(sshd):
    host = unsaved_host(sshd, use_sudo=True)
    with ssh.session(host) as session:
        assert session.run(["docker", "restart", "mailserver"]).stdout == "mailserver\n"
        assert session.command_line(["docker", "restart", "mailserver"]) == "sudo -n docker restart mailserver"
        session.run(["true"])
    assert sshd.calls() == [["sudo", "-n", "docker", "restart", "mailserver"], ["docker", "restart", "mailserver"]]


def test_a_sudo_that_asks_for_a_password_is_explained(sshd):
    sshd.set_sudo("password")
    host = unsaved_host(sshd, use_sudo=True)
    error = refusal(host, ["docker", "restart", "mailserver"])
    assert error.kind == "sudo"
    assert error.message.startswith(f"the SSH user {sshd.user} needs passwordless sudo for docker on mx1")
    assert f"{sshd.user} ALL=(root) NOPASSWD: /usr/bin/docker" in error.message
    assert sshd.calls() == [["sudo", "-n", "docker", "restart", "mailserver"]]  # sudo ran nothing


def _write(path, text):
    path.write_text(text)
    path.chmod(0o600)
    return path


def _mkdir(path):
    path.mkdir()
    return path


def test_a_command_is_traced_by_its_program_host_and_exit_status_never_its_output(sshd, monkeypatch):
    finished = record_spans(monkeypatch)  # tracing on for this test (README "Tracing")
    host = unsaved_host(sshd)
    sshd.answer(["docker", "info"], stdout="printed-on-stdout\n", stderr="printed-on-stderr\n", exit=3)
    sshd.answer(["docker", "exec", "mailserver", "postqueue", "-j"], sleep=10)
    with span("run/monitoring.probe_mail_host"), ssh.session(host) as session:  # as in a traced probe task
        assert session.run(["docker", "info"]).exit_status == 3
        with pytest.raises(ssh.SshError):
            session.run(["docker", "exec", "mailserver", "postqueue", "-j"], timeout=1)

    ran, timed_out, task = finished()
    assert ran.parent.span_id == timed_out.parent.span_id == task.context.span_id  # children of the task's span
    assert ran.name == timed_out.name == "ssh docker"
    assert dict(ran.attributes) == {
        "mailhost.name": "mx1",
        "server.address": "127.0.0.1",
        "server.port": sshd.port,
        "process.exit.code": 3,
    }
    assert timed_out.attributes["error.type"] == "SshError" and "process.exit.code" not in timed_out.attributes
    exported = ran.to_json() + timed_out.to_json()
    for never in ["printed-on", "postqueue", "did not finish"]:  # output, the command line, the error's text
        assert never not in exported


# --- the key rules, applied whenever a key is loaded -----------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"key_path": "/etc/passwd"}, "the key file must be inside the SSH key directory"),
        ({"key_path": "/etc/no-such-file"}, "the key file must be inside the SSH key directory"),
        ({"key_path": "", "key_env": "SECRET_KEY"}, "'SECRET_KEY' is refused: the key variable's name must start"),
    ],
)
def test_a_stored_key_source_that_breaks_the_rules_is_refused_before_anything_is_read(sshd, fields, message):
    # A row from before the rules, or a restored backup: nothing is read, so the refusal is the same whether the
    # file exists or not (it no longer tells "exists, not a key" from "does not exist").
    error = refusal(unsaved_host(sshd, **fields))
    assert error.kind == "key" and message in error.message
    assert "does not exist" not in error.message and "does not hold a private key" not in error.message
    assert sshd.calls() == []
    # Positive control: the host's key from the key directory connects.
    assert run(unsaved_host(sshd), ["docker", "restart", "mailserver"]).exit_status == 0


def test_a_link_in_the_key_directory_leading_out_of_it_is_refused_when_used(sshd, settings, tmp_path):
    settings.MAILHOST_SSH_KEY_DIR = tmp_path / "keys"
    settings.MAILHOST_SSH_KEY_DIR.mkdir()
    outside = tmp_path / "elsewhere"
    outside.write_text(sshd.keys["user"].read_text())
    (settings.MAILHOST_SSH_KEY_DIR / "mx1").symlink_to(outside)
    error = refusal(unsaved_host(sshd, key_path=str(settings.MAILHOST_SSH_KEY_DIR / "mx1")))
    assert error.kind == "key" and "symbolic links are followed" in error.message


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_key_file_group_or_others_may_use_is_refused_naming_its_mode_and_the_fix(sshd, settings, tmp_path, mode):
    settings.MAILHOST_SSH_KEY_DIR = tmp_path
    key = tmp_path / "mx1_ed25519"
    key.write_text(sshd.keys["user"].read_text())
    key.chmod(mode)
    error = refusal(unsaved_host(sshd, key_path=str(key)))
    assert (error.kind, error.message) == (
        "key",
        f"the key file {key} may be read or written by group or others (mode {mode:04o}); a private key must be "
        f"private to Dockspace's user: run chmod 600 {key}.",
    )
    assert sshd.calls() == []
    key.chmod(0o600)  # positive control: the same file, private, connects
    assert run(unsaved_host(sshd, key_path=str(key)), ["docker", "restart", "mailserver"]).exit_status == 0


@pytest.mark.parametrize("name", ["a..b", "...", "x" * 64 + ".example.com"])
def test_a_host_name_the_resolver_cannot_encode_is_unreachable_not_a_traceback(name):
    with pytest.raises(ssh.SshError) as caught:
        ssh.fetch_host_key(name, 22, timeout=1)
    assert (caught.value.kind, caught.value.message) == (
        "unreachable",
        f"{name} cannot be resolved (not a valid host name).",
    )
