"""Admin for the DNS checks: the results (filterable by level and check, the latest or all history), the runs, and
"Check now" on a domain's page (the panel comes through mail's seam, deliverability.dashboard.domain_dns_panel)."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from deliverability.dns_checks import domain_dns_check
from deliverability.models import DnsCheckResult, DnsCheckRun
from dockspace.validation import error_summary
from mail.models import Domain


class ReadOnlyAdmin(admin.ModelAdmin):
    """Results are written by the checks only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DnsCheckResult)
class DnsCheckResultAdmin(ReadOnlyAdmin):
    list_display = ["domain", "check_label", "level", "reason", "record_text", "checked_at", "is_latest"]
    list_filter = ["level", "kind", "is_latest", ("domain", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["domain__name", "reason", "subject"]
    date_hierarchy = "checked_at"
    list_select_related = ["domain"]
    fields = [
        "domain",
        "kind",
        "subject",
        "level",
        "reason",
        "record_name",
        "record_type",
        "record_value",
        "checked_at",
        "is_latest",
        "run",
    ]

    @admin.display(description="check", ordering="kind")
    def check_label(self, obj):
        return obj.check_label

    @admin.display(description="record to publish")
    def record_text(self, obj):
        return obj.record_text or "-"

    def get_urls(self):
        check = path(
            "check/<int:domain_id>/",
            self.admin_site.admin_view(self.check_view),
            name="deliverability_dnscheckresult_check",
        )
        return [check, *super().get_urls()]

    def check_view(self, request, domain_id):
        """ "Check now" on a domain's page: runs the checks (the service decides who may) and goes back there."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        domain = get_object_or_404(Domain, pk=domain_id)
        try:
            run = domain_dns_check(domain, request=request)
        except ValidationError as exc:
            self.message_user(request, f"Not checked: {error_summary(exc)}", messages.ERROR)
        else:
            level = messages.SUCCESS if run.level == "ok" else messages.WARNING
            self.message_user(request, f"Checked the DNS of {domain.name}: {run.level}.", level)
        return HttpResponseRedirect(reverse("admin:mail_domain_change", args=[domain.pk]))


class DnsCheckResultInline(admin.TabularInline):
    model = DnsCheckResult
    fields = ["kind", "subject", "level", "reason", "record_name", "record_type", "record_value"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DnsCheckRun)
class DnsCheckRunAdmin(ReadOnlyAdmin):
    list_display = ["domain", "checked_at", "level", "trigger", "actor_label"]
    list_filter = ["level", "trigger", ("domain", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["domain__name"]
    date_hierarchy = "checked_at"
    list_select_related = ["domain"]
    fields = ["domain", "checked_at", "level", "trigger", "actor_label"]
    inlines = [DnsCheckResultInline]
