"""The deliverability admin: sending IPs and pools, blocklists (changes and "check now" go through the services), DNS
check runs and results, blocklist results, warmup plans and each IP's warmup (its history read-only)."""

import contextlib
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from deliverability import (
    dnsbl,
    dnsbl_keys,
    dnsbl_lists,
    forms,
    ip_lifecycle,
    ip_pools,
    selectors,
    sending_ips,
    warmup_admin,  # noqa: F401 - registers the warmup plans' and IPs' admin
)
from deliverability.dns_checks import domain_dns_check
from deliverability.models import (
    LEVELS,
    Dnsbl,
    DnsblResult,
    DnsCheckResult,
    DnsCheckRun,
    IpPool,
    IpStateChange,
    SendingIp,
)
from dockspace.admin_base import ReadOnlyAdmin, ServiceAdmin
from dockspace.validation import add_to_form, error_summary


@admin.register(IpPool)
class IpPoolAdmin(ServiceAdmin):
    form = forms.IpPoolForm
    change_list_template = "admin/deliverability/ippool/change_list.html"
    change_form_template = "admin/deliverability/ippool/change_form.html"
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

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The pool's page also shows what Postfix will do with it (selectors.postfix_routing decides who may see
        it) and whether the files on disk are what the next sync writes; a posted form is saved without it."""
        routing = None
        if request.method == "GET":
            with contextlib.suppress(ValidationError):  # change permission without view: the page, not the routing
                routing = selectors.postfix_routing(request.user)
        pool = next((p for p in routing.pools if str(p.pk) == unquote(object_id)), None) if routing else None
        extra_context = {
            "routing_pool": pool,
            "routing_files": routing.files if routing else None,
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context)

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
            **(self.dnsbl_history(request, obj) if obj is not None else {}),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def remove(self, request, obj):
        sending_ips.ip_remove(ip=obj, request=request)

    def dnsbl_history(self, request, ip):
        """The IP's blocklist history (newest first) for those who may view blocklist results, and "check now" for
        those who may run the checks."""
        if not request.user.has_perm("deliverability.view_dnsblresult"):
            return {}
        rows = DnsblResult.objects.filter(subject=ip.address).select_related("dnsbl")
        return {
            "dnsbl_history": rows[:DNSBL_HISTORY_SHOWN],
            "dnsbl_history_more": rows.count() > DNSBL_HISTORY_SHOWN,
            "dnsbl_results_url": _results_url(ip.address),
            "dnsbl_may_check": request.user.has_perm(dnsbl.RUN_PERMISSION),
            "dnsbl_check_url": reverse("admin:deliverability_dnsbl_check"),
        }

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
        if request.method == "POST":
            # Re-shown after a refusal: offer the moves from the state the IP is in now (a command may have moved
            # it since the page was loaded), never every state.
            ip = self.get_object(request, unquote(object_id)) or ip
            form.offer_moves_from(ip.state)
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


DNSBL_HISTORY_SHOWN = 50


def _results_url(subject):
    return reverse("admin:deliverability_dnsblresult_changelist") + "?" + urlencode({"subject": subject})


@admin.register(Dnsbl)
class DnsblAdmin(ServiceAdmin):
    """The blocklists and their health. The access key is write-only (stored encrypted, shown as set / not set);
    "check now" runs the sweep through dnsbl_lists.dnsbl_check_now, which needs the run permission."""

    form = forms.DnsblForm
    change_list_template = "admin/deliverability/dnsbl/change_list.html"
    list_display = ["name", "zone", "kind", "action", "codes", "health_state", "health_reason", "health_checked_at"]
    list_display_links = ["name", "zone"]
    list_filter = ["health", "kind", "action", "is_enabled"]
    search_fields = ["name", "zone"]
    actions = ["check_now"]
    readonly_fields = ["key_state", "health", "health_reason", "health_checked_at", "created_at", "updated_at"]

    def get_fieldsets(self, request, obj=None):
        key = ["key_state", "key_zone", "access_key_env"]
        if obj is None or self.has_change_permission(request, obj):
            key += ["new_access_key", "clear_access_key"] if obj is not None else ["new_access_key"]
        fieldsets = [
            (None, {"fields": ["name", "zone", "kind", "listed_codes", "alert_only_codes", "action"]}),
            (None, {"fields": ["test_point", "removal_url", "is_enabled"]}),
            ("Access key (Spamhaus DQS)", {"fields": key}),
        ]
        if obj is not None:
            fieldsets.append(
                ("Health", {"fields": ["health", "health_reason", "health_checked_at", "created_at", "updated_at"]})
            )
        return fieldsets

    @admin.display(description="codes")
    def codes(self, obj):
        return format_html_join(", ", "{} {}", sorted(obj.listed_codes.items()))

    @admin.display(description="health", ordering="health")
    def health_state(self, obj):
        css = {Dnsbl.HEALTHY: "state-ok", Dnsbl.BROKEN: "state-bad"}.get(obj.health, "state-warn")
        label = "disabled" if not obj.is_enabled else obj.get_health_display()
        return format_html('<span class="{}">{}</span>', css, label)

    @admin.display(description="access key")
    def key_state(self, obj):
        return dnsbl_keys.key_state(obj.access_key_env, obj.access_key_encrypted) if obj.pk else "none"

    def remove(self, request, obj):
        dnsbl_lists.dnsbl_remove(dnsbl=obj, request=request)

    def has_run_permission(self, request):
        return request.user.has_perm(dnsbl.RUN_PERMISSION)

    @admin.action(description="Check the selected lists now (every sending IP or active domain)", permissions=["run"])
    def check_now(self, request, queryset):
        self._report(request, dnsbl_lists.dnsbl_check_now(lists=queryset, request=request))

    def _report(self, request, report):
        level = messages.WARNING if report.listed or report.broken else messages.SUCCESS
        self.message_user(request, f"Blocklists asked now: {report.summary()}.", level)

    def changelist_view(self, request, extra_context=None):
        extra_context = {"may_check": self.has_run_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        check = path("check/", self.admin_site.admin_view(self.check_view), name="deliverability_dnsbl_check")
        return [check, *super().get_urls()]

    def check_view(self, request):
        """GET: a form for one IP address or domain; POST: ask every enabled list about it now (the service decides
        who may), then its results (a sending IP's page when it is one)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = forms.DnsblCheckForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                report = dnsbl_lists.dnsbl_check_now(subject=form.cleaned_data["subject"], request=request)
            except ValidationError as exc:
                add_to_form(form, exc)
            else:
                self._report(request, report)
                subject = dnsbl.subject_for(form.cleaned_data["subject"])
                # Only someone who may view sending IPs learns that the address is one (its page, not the results).
                if subject.sending_ip is not None and request.user.has_perm(sending_ips.VIEW):
                    return HttpResponseRedirect(
                        reverse("admin:deliverability_sendingip_change", args=[subject.sending_ip.pk])
                    )
                return HttpResponseRedirect(_results_url(subject.name))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Check an IP address or a domain on the blocklists now",
            "form": form,
            "may_check": self.has_run_permission(request),
        }
        return TemplateResponse(request, "admin/deliverability/dnsbl/check.html", context)


class DomainWorstLevelFilter(admin.SimpleListFilter):
    """The results of the domains whose worst latest check is at a level: the rows behind the dashboard card's counts
    (a domain counts once, at its worst level)."""

    title = "domain's worst level"
    parameter_name = "domain_worst"

    def lookups(self, request, model_admin):
        return LEVELS

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(domain_id__in=[pk for _, pk in selectors.domains_at_level(self.value())])


@admin.register(DnsCheckResult)
class DnsCheckResultAdmin(ReadOnlyAdmin):
    list_display = ["domain", "check_label", "level", "reason_and_problems", "record_text", "checked_at", "is_latest"]
    list_filter = [
        "level",
        DomainWorstLevelFilter,
        "kind",
        "is_latest",
        ("domain", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["domain__name", "reason", "subject"]
    date_hierarchy = "checked_at"
    list_select_related = ["domain"]
    fields = [
        "domain",
        "kind",
        "subject",
        "level",
        "reason",
        "problem_items",
        "record_name",
        "record_type",
        "record_value",
        "checked_at",
        "is_latest",
        "run",
    ]

    @admin.display(description="reason", ordering="reason")
    def reason_and_problems(self, obj):
        """The reason, and every problem under it when the check found more than one."""
        if not obj.more_problems:
            return obj.reason
        return format_html("{}{}", obj.reason, problem_items_html(obj))

    @admin.display(description="problems")
    def problem_items(self, obj):
        return problem_items_html(obj) if obj.problem_list else "-"

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
        try:
            domain = selectors.domain_to_check(request.user, domain_id)
        except ValidationError as exc:
            self.message_user(request, f"Not checked: {error_summary(exc)}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:index"))
        if domain is None:
            raise Http404("no such domain")
        try:
            run = domain_dns_check(domain, request=request)
        except ValidationError as exc:
            self.message_user(request, f"Not checked: {error_summary(exc)}", messages.ERROR)
        else:
            level = messages.SUCCESS if run.level == "ok" else messages.WARNING
            self.message_user(request, f"Checked the DNS of {domain.name}: {run.level}.", level)
        return HttpResponseRedirect(reverse("admin:mail_domain_change", args=[domain.pk]))


def problem_items_html(result):
    items = format_html_join("", "<li>{}: {}</li>", ((p["level"], p["reason"]) for p in result.problem_list))
    return format_html('<ul class="dns-problems">{}</ul>', items)


class DnsCheckResultInline(admin.TabularInline):
    model = DnsCheckResult
    fields = ["kind", "subject", "level", "reason", "problem_items", "record_name", "record_type", "record_value"]
    readonly_fields = fields

    @admin.display(description="problems")
    def problem_items(self, obj):
        return problem_items_html(obj) if obj.more_problems else "-"

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


@admin.register(DnsblResult)
class DnsblResultAdmin(ReadOnlyAdmin):
    """The blocklist history: one row per period of a subject's standing on a list (written by the sweep only)."""

    list_display = ["subject", "dnsbl", "status", "code", "meaning", "first_seen_at", "checked_at", "cleared_at"]
    list_filter = ["status", "is_latest", ("dnsbl", admin.RelatedOnlyFieldListFilter), "dnsbl__kind"]
    search_fields = ["subject", "meaning"]
    date_hierarchy = "checked_at"
    list_select_related = ["dnsbl"]
    fields = [
        "subject",
        "dnsbl",
        "sending_ip",
        "status",
        "code",
        "meaning",
        "first_seen_at",
        "checked_at",
        "cleared_at",
        "is_latest",
    ]
