"""Servers the alert tests run on loopback: a webhook receiver that verifies the Standard Webhooks signature itself,
written from the specification (not with Dockspace's signing code), and a Telegram Bot API stand-in."""

import base64
import hashlib
import hmac
import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

from dockspace.tests.http_servers import serving

TOLERANCE_SECONDS = 5 * 60  # the specification's default: receivers reject more than 5 minutes of skew
# The environment that lets a process the test starts (a Celery worker) reach these stand-ins; in the test's own
# process, the fixture `outbound_to_loopback` (conftest.py) does it.
LOOPBACK_ALLOWED = {"DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8"}


class InvalidSignature(Exception):
    pass


def verify(secret, headers, body, now=None):
    """The receiver's check (standardwebhooks.com): the payload when the signature and timestamp hold, else
    InvalidSignature. `headers` is a case-insensitive mapping or a dict with lower-case names."""
    message_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (message_id and timestamp and signatures):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    now = time.time() if now is None else now
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not an integer") from None
    if sent_at < now - TOLERANCE_SECONDS:
        raise InvalidSignature("message timestamp too old")
    if sent_at > now + TOLERANCE_SECONDS:
        raise InvalidSignature("message timestamp too new")
    if not secret.startswith("whsec_"):
        raise InvalidSignature("the receiver's secret is not whsec_...")
    key = base64.b64decode(secret[len("whsec_") :])
    content = message_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())
    for candidate in signatures.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return json.loads(body)
    raise InvalidSignature("no matching signature")


class WebhookReceiver(BaseHTTPRequestHandler):
    """Records every POST as {"path", "headers", "body", "payload" (None when refused), "error"}. Answers 204 when
    the signature verifies, 400 when it does not; `server.fail_next` answers that many requests with 503 first,
    `server.redirect_to` answers every request with a 302 there."""

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        record = {"path": self.path, "headers": dict(self.headers.items()), "body": body, "payload": None, "error": ""}
        server = self.server
        with server.lock:
            server.received.append(record)
            if getattr(server, "redirect_to", None):
                self.send_response(302)
                self.send_header("Location", server.redirect_to)
                self.end_headers()
                return
            if server.fail_next > 0:
                server.fail_next -= 1
                self.send_response(503)
                self.end_headers()
                return
        try:
            record["payload"] = verify(server.secret, {k.lower(): v for k, v in self.headers.items()}, body)
        except InvalidSignature as exc:
            record["error"] = str(exc)
            self.send_response(400)
            self.end_headers()
            return
        self.send_response(204)
        self.end_headers()


@contextmanager
def webhook_receiver(secret, fail_next=0, redirect_to=None, host="127.0.0.1"):
    with serving(
        WebhookReceiver,
        host=host,
        secret=secret,
        received=[],
        fail_next=fail_next,
        redirect_to=redirect_to,
        lock=threading.Lock(),
    ) as server:
        yield server


class TelegramStandIn(BaseHTTPRequestHandler):
    """POST /bot<token>/sendMessage, as the Bot API: each request is recorded as {"token", "method", "body"};
    the answers in `server.script` ((status, json) pairs) are given in order, then {"ok": true}."""

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        token, _, method = self.path.removeprefix("/bot").partition("/")
        server = self.server
        with server.lock:
            server.received.append({"token": token, "method": method, "body": body, "at": time.time()})
            status, answer = server.script.pop(0) if server.script else (200, None)
        if answer is None:
            answer = {"ok": True, "result": {"message_id": len(server.received), "chat": {"id": body.get("chat_id")}}}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def telegram_stand_in(script=()):
    with serving(TelegramStandIn, received=[], script=list(script), lock=threading.Lock()) as server:
        yield server
