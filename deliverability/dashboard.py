"""deliverability's cards on the admin home page (DeliverabilityConfig.dashboard_cards), its panel on a domain's admin
page and its column in the domain list (mail's seams, mail.admin.domain_admin_panels and domain_list_columns): the DNS
checks and the blocklists at a glance."""

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html

from deliverability.dns_checks import RUN_PERMISSION
from deliverability.models import FAILED, OK, WARNING, Dnsbl, DnsCheckResult
from deliverability.selectors import (
    VIEW_DOMAIN,
    broken_lists,
    domain_levels,
    domain_worst_levels,
    latest_results,
    listed_subjects,
)

VIEW_PERMISSION = "deliverability.view_dnscheckresult"
DNSBL_VIEW_PERMISSION = "deliverability.view_dnsblresult"
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
    """How many domains have a failed check, and how many a warning but no failure (a domain counts once, at its
    worst latest check); each count links to the latest results of those domains at that level, and names the first
    of them (links to their pages for those who may view domains)."""
    if actor is None or not actor.is_authenticated or not actor.is_staff or not actor.has_perm(VIEW_PERMISSION):
        return None
    results_url = reverse("admin:deliverability_dnscheckresult_changelist")
    may_view_domains = actor.has_perm(VIEW_DOMAIN)
    worst = domain_worst_levels()
    rows = []
    for level, label in ((FAILED, "Domains failing"), (WARNING, "Domains with warnings")):
        domains = sorted(domain for domain, at in worst.items() if at == level)
        names = [
            {"name": name, "url": reverse("admin:mail_domain_change", args=[pk]) if may_view_domains else ""}
            for name, pk in domains[:NAMES_SHOWN]
        ]
        query = urlencode({"is_latest__exact": 1, "domain_worst": level, "level__exact": level})
        rows.append(
            {"level": level, "label": label, "count": len(domains), "names": names, "url": f"{results_url}?{query}"}
        )
    return Card(
        title="DNS checks",
        template="admin/dashboard/dns_checks.html",
        data={"rows": rows, "checked": len(worst), "url": results_url},
    )


def dnsbl_card(actor) -> Card | None:
    """How many IPs and domains are listed now and how many lists are broken, each linking to the rows."""
    if actor is None or not actor.is_authenticated or not actor.is_staff or not actor.has_perm(DNSBL_VIEW_PERMISSION):
        return None
    results_url = reverse("admin:deliverability_dnsblresult_changelist")
    listed = listed_subjects()
    rows = [
        {
            "label": label,
            "count": len(listed[kind]),
            "names": listed[kind][:NAMES_SHOWN],
            "url": f"{results_url}?is_latest__exact=1&status__exact=listed&dnsbl__kind__exact={kind}",
        }
        for kind, label in ((Dnsbl.IP, "Listed IPs"), (Dnsbl.DOMAIN, "Listed domains"))
    ]
    broken = broken_lists()
    rows.append(
        {
            "label": "Broken lists",
            "count": len(broken),
            "names": broken[:NAMES_SHOWN],
            # The lists' page is for those who may view lists; the others see the count only.
            "url": reverse("admin:deliverability_dnsbl_changelist") + "?health__exact=broken&is_enabled__exact=1"
            if actor.has_perm("deliverability.view_dnsbl")
            else "",
        }
    )
    return Card(title="Blocklists", template="admin/dashboard/dnsbl.html", data={"rows": rows, "url": results_url})


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


LEVEL_CSS = {OK: "state-ok", WARNING: "state-warn", FAILED: "state-bad"}


def domain_list_columns(request) -> list:
    """The domain list's "DNS" column: a green/amber/red dot and the worst level of the domain's latest checks ("-"
    before the first), for those who may view the checks. The levels are read once per page."""
    if not request.user.has_perm(VIEW_PERMISSION):
        return []
    levels = None

    @admin.display(description="DNS")
    def dns_level(domain):
        nonlocal levels
        if levels is None:
            levels = domain_levels()
        level = levels.get(domain.name)
        if level is None:
            return "-"  # not checked yet (like the list's other empty cells)
        return format_html('<span class="dns-level-dot {}">{}</span>', LEVEL_CSS.get(level, "state-warn"), level)

    return [dns_level]
