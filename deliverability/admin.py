"""The deliverability admin: sending IPs and pools (changes go through the services), DNS check runs and results."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from deliverability import forms, ip_lifecycle, ip_pools, sending_ips
from deliverability.dns_checks import domain_dns_check
from deliverability.models import DnsCheckResult, DnsCheckRun, IpPool, IpStateChange, SendingIp
from dockspace.admin_base import ServiceAdmin
from dockspace.validation import add_to_form, error_summary
from mail.models import Domain


@admin.register(IpPool)
class IpPoolAdmin(ServiceAdmin):
    form = forms.IpPoolForm
    list_display = ["name", "rotation_enabled", "ip_count", "in_rotation", "domain_names", "tier_names"]
    list_filter = ["rotation_enabled"]
    search_fields = ["name", "description", "domains__name"]
    filter_horizontal = ["domains", "tiers"]
    readonly_fields = ["ip_table"]
    fields = ["name", "description", "domains", "tiers", "rotation_enabled", "ip_table"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("ips", "domains", "tiers")

    @admin.display(description="IPs")
    def ip_count(self, obj):
        return len(obj.ips.all())

    @admin.display(description="in rotation (weight)")
    def in_rotation(self, obj):
        ips = [ip for ip in obj.ips.all() if ip.is_in_rotation]
        return ", ".join(f"{ip.address} ({ip.weight})" for ip in ips) or "-"

    @admin.display(description="domains")
    def domain_names(self, obj):
        return ", ".join(sorted(d.name for d in obj.domains.all())) or "-"

    @admin.display(description="tiers")
    def tier_names(self, obj):
        return ", ".join(sorted(t.name for t in obj.tiers.all())) or "-"

    @admin.display(description="IPs of this pool")
    def ip_table(self, obj):
        ips = list(obj.ips.order_by("address")) if obj.pk else []
        if not ips:
            return "No IPs yet: add sending IPs with this pool (the domains send through the default IP meanwhile)."
        total = sum(ip.weight for ip in ips if ip.is_in_rotation) or 1
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:deliverability_sendingip_change", args=[ip.pk]),
                    ip.address,
                    ip.helo_name,
                    ip.state,
                    ip.weight,
                    f"{100 * ip.weight / total:.0f} %" if ip.is_in_rotation else "not in rotation",
                )
                for ip in ips
            ),
        )
        duties = reverse("admin:deliverability_ip-duties")
        return format_html(
            '<table class="pool-ips"><thead><tr><th>IP</th><th>HELO name</th><th>state</th><th>weight</th>'
            "<th>share of new mail</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">What the periodic duties would do now</a></p>',
            rows,
            duties,
        )

    def remove(self, request, obj):
        ip_pools.pool_remove(pool=obj, request=request)


class IpStateChangeInline(admin.TabularInline):
    model = IpStateChange
    verbose_name_plural = "State history"
    fields = ["at", "from_state", "to_state", "reason", "actor_label"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-at", "-pk"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SendingIp)
class SendingIpAdmin(ServiceAdmin):
    change_form_template = "admin/deliverability/sendingip/change_form.html"
    list_display = ["address", "helo_name", "pool", "weight", "state", "state_since"]
    list_filter = ["state", "pool"]
    search_fields = ["address", "helo_name", "notes"]
    list_select_related = ["pool"]
    inlines = [IpStateChangeInline]

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = forms.SendingIpAddForm if obj is None else forms.SendingIpChangeForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return ["address", "state", "state_since", "created_at"] if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["address", "helo_name", "pool", "weight", "state", "notes"]
        return ["address", "state", "state_since", "helo_name", "pool", "weight", "notes", "created_at"]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        extra_context = {
            "can_change_state": obj is not None and self.has_change_permission(request, obj),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def remove(self, request, obj):
        sending_ips.ip_remove(ip=obj, request=request)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/state/", view(self.state_view), name="deliverability_sendingip_state"),
        ] + super().get_urls()

    def state_view(self, request, object_id):
        """GET: the moves the lifecycle allows from the IP's state; POST: ip_set_state with the reason (the service
        checks the permission, so staff who may only view are refused even if they post the form)."""
        ip = self.get_object(request, unquote(object_id))
        if ip is None:
            raise Http404("No such sending IP.")
        if not self.has_view_permission(request, ip):
            raise PermissionDenied
        change_url = reverse("admin:deliverability_sendingip_change", args=[ip.pk])
        # Posted, any state is taken: the service says which moves are allowed (the page offers only those).
        form = forms.StateChangeForm(request.POST or None, ip=ip, any_state=request.method == "POST")
        if request.method == "POST" and form.is_valid():
            try:
                sending_ips.ip_set_state(
                    ip=ip, state=form.cleaned_data["state"], reason=form.cleaned_data["reason"], request=request
                )
            except ValidationError as e:
                add_to_form(form, e)
            else:
                ip.refresh_from_db()
                self.message_user(request, f"{ip.address} is {ip.state} now.", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Change the state of {ip.address}",
            "original": ip,
            "change_url": change_url,
            "form": form,
            "allowed": ip_lifecycle.allowed_moves(ip.state),
            "can_change": self.has_change_permission(request, ip),
        }
        return TemplateResponse(request, "admin/deliverability/sendingip/state.html", context)


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
