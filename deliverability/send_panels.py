"""Today's sending against the tiers' limits on other apps' pages: the person's profile and the mailbox's and domain's
admin pages (their seams in DeliverabilityConfig). Each renders "" when the viewer may not see it or the counters
cannot be read: a page never fails because of this panel."""

import logging

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.template.loader import render_to_string
from redis.exceptions import RedisError

from deliverability import send_limits

logger = logging.getLogger(__name__)


def profile_send_panel(request: HttpRequest) -> str:
    try:
        usages = send_limits.own_send_usage(request.user)
    except (RedisError, OSError) as exc:
        logger.warning("send usage for the profile: the counters cannot be read: %s", exc)
        return ""
    if not usages:
        return ""
    return render_to_string("deliverability/profile_send_panel.html", {"usages": usages}, request=request)


def admin_send_panel(request: HttpRequest, subject: str) -> str:
    try:
        usages = send_limits.send_usage(actor=request.user, subject=subject)
    except ValidationError:
        return ""
    except (RedisError, OSError) as exc:
        logger.warning("send usage of %s: the counters cannot be read: %s", subject, exc)
        return ""
    return render_to_string(
        "admin/deliverability/send_usage_panel.html", {"usages": usages, "subject": subject}, request=request
    )
