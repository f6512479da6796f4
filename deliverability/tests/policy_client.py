"""A client of the policy service that speaks as Postfix's smtpd does: one connection kept open across messages, the
attribute set of Postfix 3.7 for each protocol state (recipient_count 0 before DATA, queue_id from END-OF-MESSAGE
on, `instance` the same for one message), an empty line after each request, one `action=` line back. Also a server
run in a thread of the test, on the configuration the test's database holds."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
from contextlib import contextmanager

from deliverability.policy_config import load_config
from deliverability.policy_server import Policy, PolicyServer
from dockspace.tests.ports import free_port

_instances = itertools.count(1)


class PostfixClient:
    def __init__(self, port, host="127.0.0.1", source=None):
        self.sock = socket.create_connection((host, port), timeout=10, source_address=(source, 0) if source else None)
        self.file = self.sock.makefile("rwb")

    def close(self):
        self.file.close()
        self.sock.close()

    def ask(self, **attributes):
        """Send one request; the action Postfix would read ('' when the server closed the connection)."""
        try:
            for name, value in attributes.items():
                self.file.write(f"{name}={value}\n".encode())
            self.file.write(b"\n")
            self.file.flush()
            return self.read_answer()
        except ConnectionError:
            return ""  # closed or reset by the server: Postfix reads no answer either

    def read_answer(self):
        action = None
        while True:
            line = self.file.readline()
            if not line:
                return ""
            if line == b"\n":
                return action
            text = line.decode().rstrip("\n")
            if text.startswith("action="):
                action = text.removeprefix("action=")

    @staticmethod
    def attributes(state, *, sender, recipient="", sasl_username="", client="192.0.2.99", count=0, instance=""):
        return {
            "request": "smtpd_access_policy",
            "protocol_state": state,
            "protocol_name": "ESMTP",
            "helo_name": "client.example.net",
            "queue_id": "4F2A81C0B3" if state in ("END-OF-MESSAGE",) else "",
            "sender": sender,
            "recipient": recipient,
            "recipient_count": str(count),
            "client_address": client,
            "client_name": "client.example.net",
            "client_port": "51234",
            "reverse_client_name": "client.example.net",
            "instance": instance,
            "sasl_method": "PLAIN" if sasl_username else "",
            "sasl_username": sasl_username,
            "sasl_sender": "",
            "size": "1234",
            "ccert_subject": "",
            "ccert_issuer": "",
            "ccert_fingerprint": "",
            "ccert_pubkey_fingerprint": "",
            "encryption_protocol": "TLSv1.3",
            "encryption_cipher": "TLS_AES_256_GCM_SHA384",
            "encryption_keysize": "256",
            "etrn_domain": "",
            "stress": "",
            "server_address": "192.0.2.1",
            "server_port": "587",
            "policy_context": "",
            "compatibility_level": "3.6",
            "mail_version": "3.7.11",
        }

    def send(self, sender, recipients, *, sasl=True, client="192.0.2.99"):
        """One message as smtpd asks about it: RCPT for each recipient, then DATA and END-OF-MESSAGE with the count
        of recipients accepted. Returns (the actions for each recipient, the DATA action, the END-OF-MESSAGE action);
        a refusal at RCPT leaves that recipient out, a refusal at DATA ends the message."""
        instance = f"{next(_instances):x}.6f2c1a.0"
        common = {"sender": sender, "sasl_username": sender if sasl else "", "client": client, "instance": instance}
        at_rcpt = [self.ask(**self.attributes("RCPT", recipient=r, **common)) for r in recipients]
        accepted = sum(1 for action in at_rcpt if not _refused(action))
        if not accepted:
            return at_rcpt, None, None
        at_data = self.ask(**self.attributes("DATA", count=accepted, **common))
        if _refused(at_data):
            return at_rcpt, at_data, None
        return at_rcpt, at_data, self.ask(**self.attributes("END-OF-MESSAGE", count=accepted, **common))


def _refused(action):
    return action[:1] in ("4", "5") or action.startswith(("REJECT", "DEFER"))


class ThreadServer:
    """A policy server in a thread of the test: the configuration is read once, from the test's database."""

    def __init__(self, counters, *, config=None, rng=None, **server_options):
        self.policy = Policy(config if config is not None else load_config(), counters, rng=rng)
        self.server = PolicyServer(self.policy, **server_options)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self._task = self.loop.create_task(self.server.serve("127.0.0.1", self.port, ready=self._ready.set))
        try:
            self.loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            self.loop.close()

    def start(self):
        self.thread.start()
        assert self._ready.wait(10), "the policy server did not start"
        return self

    def reload(self):
        self.policy.config = load_config()

    def stop(self):
        self.loop.call_soon_threadsafe(self._task.cancel)
        self.thread.join(10)


@contextmanager
def policy_server(counters, **kw):
    server = ThreadServer(counters, **kw).start()
    try:
        yield server
    finally:
        server.stop()
