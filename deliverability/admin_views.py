"""Deliverability's pages in the admin site beyond the model lists (declared in DeliverabilityConfig.admin_pages();
the admin site checks staff, second factor and the page's permission before calling them)."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.utils import timezone

from deliverability import ip_duties, selectors


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
