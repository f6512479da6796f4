"""Sending one notification to one channel: email (Django's send_mail, so the configured EMAIL_BACKEND and its
outbox apply), a signed webhook, Telegram. deliver() raises ChannelError, whose message never holds a secret.

What is sent is the event's payload, {"type": "alert.fired", "timestamp": ..., "data": {...}}: the webhook body as
it is, the text of an email or a Telegram message made from it by message_text()."""

import json
import logging
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail

from accounts.outbox import mail_kind
from dockspace import outbound_http
from monitoring import standard_webhooks
from monitoring.alert_models import TELEGRAM_TOKEN_RULE, webhook_secret_problem
from monitoring.channel_secrets import SecretUnavailable

log = logging.getLogger(__name__)

TELEGRAM_TEXT_LIMIT = 4096
VIEW_PERMISSION = "monitoring.view_alert"
HEADLINES = {
    "alert.fired": "FIRING",
    "alert.repeat": "STILL FIRING",
    "alert.resolved": "RESOLVED",
    "alert.test": "TEST",
}


class ChannelError(Exception):
    """A notification was not delivered. retry_after: seconds the receiver asked us to wait (Telegram's 429);
    permanent: retrying cannot help (no secret, a refused URL, Telegram's 'chat not found')."""

    def __init__(self, message, *, retry_after=None, permanent=False):
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


def message_text(payload):
    """Subject line and body of a notification, for people (email, Telegram)."""
    data = payload["data"]
    headline = HEADLINES.get(payload["type"], payload["type"])
    subject = f"[Dockspace] {headline}: {data['title']}"
    lines = [data.get("summary") or ""]
    if data.get("value") is not None:
        lines.append(f"Value: {data['value']:g}")
    for label, key in [("Since", "pending_since"), ("Fired", "fired_at"), ("Resolved", "resolved_at")]:
        if data.get(key):
            lines.append(f"{label}: {data[key]}")
    if data.get("reopen_count"):
        lines.append(f"Fired again after resolving: {data['reopen_count']} time(s)")
    if data.get("url"):
        lines.append(data["url"])
    return subject, "\n".join(line for line in lines if line)


def _staff_addresses():
    people = get_user_model().objects.filter(is_active=True, is_staff=True).exclude(email="").order_by("email")
    return [person.email for person in people if person.has_perm(VIEW_PERMISSION)]


def email_recipients(channel):
    recipients = _staff_addresses() if channel.email_to_staff else []
    return list(dict.fromkeys(recipients + channel.addresses()))


def _send_email(channel, payload):
    recipients = email_recipients(channel)
    if not recipients:
        raise ChannelError("no recipients: no staff member may see alerts and no address is listed", permanent=True)
    subject, body = message_text(payload)
    try:
        with mail_kind("alert"):  # stored in the outbox (accounts.outbox), which retries and fails over
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except Exception as exc:  # SMTP, connection or backend errors: retried
        raise ChannelError(f"sending mail failed: {type(exc).__name__}: {exc}") from None
    return f"mailed {len(recipients)} recipient(s)"


def _secret(channel):
    try:
        return channel.secret()
    except SecretUnavailable as exc:
        raise ChannelError(str(exc), permanent=True) from None


def webhook_body(payload):
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def _send_webhook(channel, payload, message_id):
    return post_signed(channel.webhook_url, _secret(channel), payload, message_id)


def post_signed(url, secret, payload, message_id):
    """POST `payload` as JSON to `url`, signed the Standard Webhooks way with `secret` (whsec_...) and `message_id`
    (the same on every retry), stamped now. A short account of the answer, or ChannelError (permanent when retrying
    cannot help: a bad secret, a refused address). Alert webhooks and the bounce and complaint webhooks send so."""
    body = webhook_body(payload)
    problem = webhook_secret_problem(secret)
    if problem:
        raise ChannelError(f"the signing secret {problem}", permanent=True)
    headers = {
        "Content-Type": "application/json",
        **standard_webhooks.signed_headers(secret, message_id, int(time.time()), body),
    }
    try:
        response = outbound_http.post(url, body, headers)
    except outbound_http.RefusedAddress as exc:
        raise ChannelError(f"webhook {exc}", permanent=True) from None
    except outbound_http.OutboundError as exc:
        raise ChannelError(str(exc), permanent=exc.is_permanent) from None
    if not response.is_success:
        raise ChannelError(f"{outbound_http.origin(url)} answered {response.describe()}")
    return f"{outbound_http.origin(url)} answered HTTP {response.status}"


def _telegram_call(token, chat_id, text):
    """One sendMessage; the decoded answer (Telegram answers JSON with "ok", errors included)."""
    base = settings.ALERT_TELEGRAM_API_BASE.rstrip("/")
    body = json.dumps({"chat_id": chat_id, "text": text, "disable_web_page_preview": True}).encode()
    try:
        response = outbound_http.post(f"{base}/bot{token}/sendMessage", body, {"Content-Type": "application/json"})
    except outbound_http.RefusedAddress as exc:
        raise ChannelError(f"Telegram {exc}", permanent=True) from None
    except outbound_http.OutboundError as exc:
        raise ChannelError(f"Telegram: {exc}", permanent=exc.is_permanent) from None
    try:
        answer = json.loads(response.body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ChannelError(f"Telegram answered {response.describe()} without a Bot API answer")
    return response, answer


def _send_telegram(channel, payload):
    token = _secret(channel)
    if not TELEGRAM_TOKEN_RULE.match(token):  # a stored one was checked when entered; a variable's is checked here
        where = f" in {channel.secret_env}" if channel.secret_env else ""
        raise ChannelError(
            f"the bot token{where} is not one as @BotFather gives it (digits, ':' and 30+ letters, digits, '_' or "
            "'-'; no spaces or line breaks)",
            permanent=True,
        )
    subject, body = message_text(payload)
    text = f"{subject}\n{body}"
    if len(text) > TELEGRAM_TEXT_LIMIT:
        text = text[: TELEGRAM_TEXT_LIMIT - 1] + "…"
    chat_id = channel.telegram_chat_id.strip()
    response, answer = _telegram_call(token, chat_id, text)
    parameters = answer.get("parameters") or {}
    if not answer.get("ok") and parameters.get("migrate_to_chat_id"):
        # The group became a supergroup with a new id: remember it, then send there.
        new_id = str(parameters["migrate_to_chat_id"])
        channel.telegram_chat_id = new_id
        channel.save(update_fields=["telegram_chat_id"])
        log.info("Telegram channel %s: chat %s moved to %s; saved", channel.name, chat_id, new_id)
        response, answer = _telegram_call(token, new_id, text)
        parameters = answer.get("parameters") or {}
    if answer.get("ok"):
        return f"Telegram accepted it (chat {channel.telegram_chat_id})"
    description = str(answer.get("description") or response.describe())[:300]
    if response.status == 429 or answer.get("error_code") == 429:
        retry_after = parameters.get("retry_after")
        retry_after = int(retry_after) if isinstance(retry_after, int | float) and retry_after > 0 else 30
        raise ChannelError(f"Telegram: too many requests, retry after {retry_after} s", retry_after=retry_after)
    # 400 (chat not found, bad request), 401 (wrong token), 403 (bot removed from the chat) will not get better.
    raise ChannelError(f"Telegram: {description}", permanent=400 <= response.status < 500)


def deliver(channel, payload, message_id):
    """Send `payload` over `channel`; a short description of what happened, or ChannelError."""
    if channel.kind == channel.EMAIL:
        return _send_email(channel, payload)
    if channel.kind == channel.WEBHOOK:
        return _send_webhook(channel, payload, message_id)
    if channel.kind == channel.TELEGRAM:
        return _send_telegram(channel, payload)
    raise ChannelError(f"unknown channel kind {channel.kind!r}", permanent=True)
