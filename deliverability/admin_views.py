"""Deliverability's pages in the admin site beyond the model lists (declared in DeliverabilityConfig.admin_pages();
the admin site checks staff, second factor and the page's permission before calling them)."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.http import urlencode
from redis.exceptions import RedisError

from deliverability import ip_duties, selectors, send_limits


def ip_duties_view(request, context):
    """What the periodic duties would do if they ran now (nothing changes here)."""
    now = timezone.now()
    plans = ip_duties.duties_dry_run(actor=request.user, now=now)
    return TemplateResponse(request, "admin/deliverability/ip_duties.html", {**context, "plans": plans, "now": now})


def postfix_routing_view(request, context):
    """What Postfix will do with the sending IP pools (selectors.postfix_routing, which decides who may see it)."""
    try:
        routing = selectors.postfix_routing(request.user)
    except ValidationError:
        raise PermissionDenied from None
    return TemplateResponse(request, "admin/deliverability/postfix_routing.html", {**context, "routing": routing})


def send_limits_view(request, context):
    """Today's sending against the tiers' limits: the busiest mailboxes and domains, one looked up, and its reset
    (POST; the service checks the permission to change mailboxes, or domains)."""
    subject = (request.POST.get("subject") if request.method == "POST" else request.GET.get("subject", "")) or ""
    subject = subject.strip()[:254]
    errors: list[str] = []
    if request.method == "POST":
        try:
            before = send_limits.send_limits_reset(actor=request.user, subject=subject)
        except ValidationError as exc:
            errors = [message for messages_ in exc.message_dict.values() for message in messages_]
        except (RedisError, OSError) as exc:
            errors = [f"the policy service's counters cannot be reached: {exc}"]
        else:
            messages.success(request, f"Today's count of {before[0].subject} was {before[0].used}; it is now 0.")
            return HttpResponseRedirect(f"{request.path}?{urlencode({'subject': subject})}")
    now = timezone.now()
    found = []
    try:
        busiest = send_limits.busiest_today(actor=request.user, now=now)
        if subject and not errors:
            found = send_limits.send_usage(actor=request.user, subject=subject, now=now)
    except ValidationError as exc:
        busiest = busiest if "busiest" in locals() else []
        errors = [message for messages_ in exc.message_dict.values() for message in messages_]
    except (RedisError, OSError) as exc:
        busiest, errors = [], [f"the policy service's counters cannot be reached: {exc}"]
    held = []
    if request.user.has_perm(send_limits.VIEW_SENDING_IP):
        try:
            held = send_limits.held_backlog(actor=request.user)
        except (RedisError, OSError):
            held = []
    perm = send_limits.CHANGE_MAILBOX if "@" in subject else send_limits.CHANGE_DOMAIN
    return TemplateResponse(
        request,
        "admin/deliverability/send_limits.html",
        {
            **context,
            "now": now,
            "subject": subject,
            "found": found,
            "busiest": busiest,
            "errors": errors,
            "may_reset": bool(found) and request.user.has_perm(perm),
            "held": held,
            "may_see_held": request.user.has_perm(send_limits.VIEW_SENDING_IP),
            "release_command": settings.POLICY_RELEASE_COMMAND,
        },
    )
