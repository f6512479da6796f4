"""deliverability's cards on the admin home page (DeliverabilityConfig.dashboard_cards) and its panel on a domain's
admin page (mail's seam, mail.admin.domain_admin_panels): the DNS checks at a glance."""

from dataclasses import dataclass, field

from django.template.loader import render_to_string
from django.urls import reverse

from deliverability.dns_checks import RUN_PERMISSION
from deliverability.models import FAILED, WARNING, DnsCheckResult
from deliverability.selectors import domain_levels, latest_results, level_counts

VIEW_PERMISSION = "deliverability.view_dnscheckresult"
NAMES_SHOWN = 10


@dataclass
class Card:
    """What the admin's index template reads of a card (the same fields as monitoring's cards)."""

    title: str
    template: str
    data: dict = field(default_factory=dict)
    wide: bool = False
    scripts: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)


def dns_checks_card(actor) -> Card | None:
    """How many domains have a failed or a warning DNS check, and the first of them."""
    if actor is None or not actor.is_authenticated or not actor.is_staff or not actor.has_perm(VIEW_PERMISSION):
        return None
    levels = domain_levels()
    results_url = reverse("admin:deliverability_dnscheckresult_changelist")
    rows = [
        {
            "level": level,
            "label": label,
            "count": count,
            "names": sorted(name for name, worst in levels.items() if worst == level)[:NAMES_SHOWN],
            "url": f"{results_url}?is_latest__exact=1&level__exact={level}",
        }
        for level, label, count in (
            (FAILED, "Failed", level_counts()[FAILED]),
            (WARNING, "Warnings", level_counts()[WARNING]),
        )
    ]
    return Card(
        title="DNS checks",
        template="admin/dashboard/dns_checks.html",
        data={"rows": rows, "checked": len(levels), "url": results_url},
    )


def domain_dns_panel(request, domain) -> str:
    """The domain's latest checks as a green/amber/red table with each record to publish and a copy button, and
    "Check now" for those who may run checks ("" for those who may not view them)."""
    user = request.user
    if not user.has_perm(VIEW_PERMISSION):
        return ""
    results = latest_results(domain)
    return render_to_string(
        "admin/deliverability/domain_dns_checks.html",
        {
            "domain": domain,
            "results": results,
            "checked_at": results[0].checked_at if results else None,
            "may_run": user.has_perm(RUN_PERMISSION),
            "check_url": reverse("admin:deliverability_dnscheckresult_check", args=[domain.pk]),
            "history_url": reverse("admin:deliverability_dnscheckresult_changelist")
            + f"?domain__id__exact={domain.pk}",
            "levels": {"ok": "state-ok", "warning": "state-warn", "failed": "state-bad"},
            "kinds": DnsCheckResult.CHECKS,
        },
        request=request,
    )
