"""Signing webhook requests the Standard Webhooks way (standardwebhooks.com): pure functions, no I/O.

The receiver gets `webhook-id` (the same on every retry of one message), `webhook-timestamp` (seconds since the
epoch) and `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the key is the
base64 part of the shared secret `whsec_<base64>`. Receivers recompute it and reject a timestamp more than 5
minutes away from their clock."""

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def generate_secret(size=32):
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(size)).decode()


def _key(secret):
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret, message_id, timestamp, body):
    """'v1,<base64>' for the body (bytes) sent with this id and timestamp (int seconds)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def signed_headers(secret, message_id, timestamp, body):
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }
