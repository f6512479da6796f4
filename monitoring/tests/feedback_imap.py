"""A feedback mailbox on a real Dovecot (mail/tests/dovecot_server.py) with TLS on loopback: imaps and imap with
STARTTLS, its certificate signed by a throwaway CA (dockspace/tests/certificates.py), one account whose messages the
tests put there with APPEND and read back as an IMAP client would."""

import contextlib
import imaplib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dockspace.env import ImapMailbox
from dockspace.tests.certificates import Authority
from dockspace.tests.ports import free_port as _free_port
from mail.tests.dovecot_server import hash_password, running_dovecot, skip_unless_dovecot_23, skip_unless_protocol

USER, PASSWORD = "bounces@example.com", "feedback-pass-1"
_TIMEOUT = 10


def skip_unless_imap():
    skip_unless_dovecot_23()
    skip_unless_protocol("imap")


@dataclass
class FeedbackServer:
    server: object
    authority: Authority
    imaps_port: int

    def mailbox(self, *, implicit=True, folder="INBOX", user=USER):
        port = self.imaps_port if implicit else self.server.imap_port
        return ImapMailbox(implicit, "127.0.0.1", port, user, folder)

    @contextlib.contextmanager
    def client(self):
        """Signed in as the account, over plain IMAP on loopback (what the test itself does is not under test)."""
        client = imaplib.IMAP4("127.0.0.1", self.server.imap_port, timeout=_TIMEOUT)
        client.login(USER, PASSWORD)
        try:
            yield client
        finally:
            client.logout()

    def append(self, raw, folder="INBOX", flags=""):
        with self.client() as client:
            typ, data = client.append(f'"{folder}"', flags or None, None, raw)
            assert typ == "OK", data

    def create(self, folder):
        with self.client() as client:
            assert client.create(f'"{folder}"')[0] == "OK"

    def messages(self, folder="INBOX"):
        """[(flags, raw)] of the folder, in order."""
        found = []
        with self.client() as client:
            typ, _ = client.select(f'"{folder}"', readonly=True)
            assert typ == "OK"
            _, data = client.uid("SEARCH", "ALL")
            for uid in data[0].split():
                _, parts = client.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
                head, raw = next(item for item in parts if isinstance(item, tuple))
                flags = head.decode().split("FLAGS (", 1)[1].split(")", 1)[0].split()
                found.append((set(flags) - {"\\Recent"}, raw))  # \Recent: new to this session, not a mark
        return found


@contextlib.contextmanager
def feedback_mailbox_server(directory: Path):
    """Dovecot with the account USER/PASSWORD, imaps on a free port and STARTTLS on the imap port."""
    authority = Authority(directory)
    certfile, keyfile, _ = authority.issue("imap", not_after=datetime.now(UTC) + timedelta(days=30))
    certfile.chmod(0o644)
    keyfile.chmod(0o644)
    imaps_port = _free_port()

    def with_tls(root, config):
        plain_ssl = "ssl = no\n"
        closed_imaps = "  inet_listener imaps {\n    port = 0\n  }\n"
        if plain_ssl not in config or closed_imaps not in config:
            raise RuntimeError("mail/tests/dovecot_server.py changed its ssl or imaps lines; update this helper")
        config = config.replace(plain_ssl, f"ssl = yes\nssl_cert = <{certfile}\nssl_key = <{keyfile}\n")
        return config.replace(
            closed_imaps, f"  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {imaps_port}\n  }}\n"
        )

    accounts = f"{USER}|{hash_password(PASSWORD)}|\n"
    with running_dovecot(accounts, extend_config=with_tls) as server:
        yield FeedbackServer(server, authority, imaps_port)
