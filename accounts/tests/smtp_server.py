"""Real SMTP servers for the outbox tests: aiosmtpd listening on 127.0.0.1, keeping what it accepts."""

import email
import email.policy
import re
import threading
from dataclasses import dataclass

from aiosmtpd.controller import Controller

from dockspace.tests.ports import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list
    content: bytes

    @property
    def message(self):
        return email.message_from_bytes(self.content, policy=email.policy.default)

    @property
    def text(self):
        return self.message.get_body(preferencelist=("plain",)).get_content()

    def link(self, path_prefix):
        return re.search(rf"https://dockspace\.test({path_prefix}\S+/)", self.text).group(1)


class SmtpServer:
    """`start()` listens on its port (the same one after a `stop()`); while `refusal` holds a reply ("550 5.1.1 No
    such user here") every recipient gets it."""

    def __init__(self):
        self.port = free_port()
        self.received = []
        self.refusal = None
        self._lock = threading.Lock()
        self._controller = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refusal:
            return self.refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def start(self):
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, server_hostname="smtp.test")
        self._controller.start()
        return self

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def message_ids(self):
        with self._lock:
            return [email.message_from_bytes(r.content)["Message-ID"] for r in self.received]


def use_smtp(settings, primary, backup=None):
    """Point the outbox at these servers (plain SMTP on loopback, no TLS, no login)."""
    settings.EMAIL_BACKEND = "accounts.outbox.OutboxBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", primary.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    settings.EMAIL_BACKUP_HOST = "127.0.0.1" if backup else ""
    settings.EMAIL_BACKUP_PORT = backup.port if backup else 587
    settings.EMAIL_BACKUP_USE_TLS = settings.EMAIL_BACKUP_USE_SSL = False
