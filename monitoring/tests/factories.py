"""Mail hosts for tests: added through the service against a test's sshd (monitoring/tests/sshd.py)."""

import io

from django.core.management import call_command

from monitoring import hosts, ssh
from monitoring.models import MailHost


def add_host(sshd, name="mx1", **kwargs):
    """A stored MailHost for the running `sshd`, its host key trusted as the service does it."""
    arguments = {"key_path": str(sshd.keys["user"]), **kwargs}
    return hosts.mailhost_add(name=name, ssh_target=sshd.target, trust=sshd.fingerprint(), **arguments).host


def unsaved_host(sshd, **fields):
    """A MailHost pinned to the key `sshd` presents now, not stored (for the SSH module alone)."""
    offered = ssh.fetch_host_key("127.0.0.1", sshd.port)
    values = {
        "name": "mx1",
        "ssh_user": sshd.user,
        "ssh_host": "127.0.0.1",
        "ssh_port": sshd.port,
        "key_path": str(sshd.keys["user"]),
        "host_key_type": offered.type,
        "host_key_fingerprint": offered.fingerprint,
        "host_key": offered.base64,
        **fields,
    }
    return MailHost(**values)


def run(*args):
    """call_command with captured output: what the command printed on stdout."""
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()
