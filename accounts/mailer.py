"""Sending Dockspace's own mail (password-reset links) through the Celery worker.

Queuing makes a reset request take the same time whether or not the address exists: the SMTP
conversation happens later, in the worker, never in the request.
"""

import logging

from django.core.mail import EmailMessage

logger = logging.getLogger(__name__)


def message_send_now(*, subject, body, to):
    EmailMessage(subject=subject, body=body, to=to).send()


def message_queue(*, subject, body, to):
    """Hand the message to the worker; if the broker is unreachable, send it inline instead."""
    from accounts.tasks import send_message

    try:
        send_message.delay(subject=subject, body=body, to=to)
    except Exception:  # broker down: the person still gets the link, just without the timing guarantee
        logger.warning("Task queue unreachable; sending the message directly.")
        message_send_now(subject=subject, body=body, to=to)
