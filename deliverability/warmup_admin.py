"""The warmup admin (registered by deliverability.admin): plans, with each step's caps, and each IP's place in its
plan, whose history is read-only. Changes go through deliverability.warmup_plans and deliverability.ip_warmup."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.utils.html import format_html, format_html_join

from deliverability import forms, ip_lifecycle, warmup, warmup_plans
from deliverability.models import IpWarmup, WarmupPlan
from dockspace.admin_base import ServiceAdmin


@admin.register(WarmupPlan)
class WarmupPlanAdmin(ServiceAdmin):
    form = forms.WarmupPlanForm
    list_display = ["name", "is_default", "outline", "growth_percent", "gates", "min_attempts", "ip_count"]
    search_fields = ["name"]
    readonly_fields = ["schedule_table", "created_at", "updated_at"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": ["name", "is_default", "steps", "growth_percent", "target_daily"]}),
            (
                "Gates (% of attempts)",
                {
                    "fields": [
                        ("advance_bounce_below", "advance_complaint_below"),
                        ("step_back_bounce_at", "step_back_complaint_at"),
                        ("standby_bounce_at", "standby_complaint_at"),
                        "min_attempts",
                    ]
                },
            ),
        ]
        if obj is not None:
            fieldsets.append(("Steps", {"fields": ["schedule_table", "created_at", "updated_at"]}))
        return fieldsets

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("ip_warmups")

    @admin.display(description="steps")
    def outline(self, obj):
        volumes = warmup.schedule(obj.as_plan())
        return f"{len(volumes)}: {volumes[0]}/day to {volumes[-1]}/day"

    @admin.display(description="bounces / complaints: advance, step back, standby")
    def gates(self, obj):
        def rates(*values):
            return " / ".join(f"{value.normalize():f}" for value in values)

        return (
            f"< {rates(obj.advance_bounce_below, obj.advance_complaint_below)}; "
            f">= {rates(obj.step_back_bounce_at, obj.step_back_complaint_at)}; "
            f">= {rates(obj.standby_bounce_at, obj.standby_complaint_at)} %"
        )

    @admin.display(description="IPs")
    def ip_count(self, obj):
        return len(obj.ip_warmups.all())

    @admin.display(description="daily and hourly caps of each step")
    def schedule_table(self, obj):
        if obj.pk is None or obj.problems():
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((n, daily, warmup.hourly_cap(daily)) for n, daily in enumerate(warmup.schedule(obj.as_plan()), start=1)),
        )
        return format_html(
            '<table class="warmup-steps"><thead><tr><th>step</th><th>a day</th><th>an hour</th></tr></thead>'
            "<tbody>{}</tbody></table>",
            rows,
        )

    def remove(self, request, obj):
        warmup_plans.warmup_plan_remove(plan=obj, request=request)


@admin.register(IpWarmup)
class IpWarmupAdmin(ServiceAdmin):
    """Each IP's place in its plan. An operator may set the plan and step (ip_warmup.ip_warmup_set); the history is
    written by the daily evaluation and those changes only. The state goes with its IP, never alone."""

    form = forms.IpWarmupForm
    list_display = ["ip", "ip_state", "plan", "step", "caps", "step_started_at", "sent_in_step", "last_sent_at"]
    list_filter = ["ip__state", "plan"]
    search_fields = ["ip__address"]
    list_select_related = ["ip", "plan"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["ip", "plan", "step", "reason"]
        can_change = self.has_change_permission(request, obj)
        return [
            "ip",
            "ip_state",
            "plan",
            "step",
            *(["reason"] if can_change else []),
            "caps",
            "step_started_at",
            "sent_in_step",
            "last_sent_at",
            "standby_at",
            "history_table",
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "ip",
            "ip_state",
            "caps",
            "step_started_at",
            "sent_in_step",
            "last_sent_at",
            "standby_at",
            "history_table",
        ]

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="IP state", ordering="ip__state")
    def ip_state(self, obj):
        return obj.ip.state

    @admin.display(description="caps (a day / an hour)")
    def caps(self, obj):
        if obj.ip.state != ip_lifecycle.WARMING:
            return "none (not WARMING)"
        daily, hourly = obj.caps()
        return f"{daily} / {hourly}"

    @admin.display(description="decisions (newest first)")
    def history_table(self, obj):
        entries = list(reversed(obj.history or []))
        if not entries:
            return "No decision yet: the daily evaluation writes one a day."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    entry.get("at", ""),
                    warmup.ACTION_LABELS.get(entry.get("action"), entry.get("action", "")),
                    f"{entry.get('step_from') or '-'} -> {entry.get('step_to', '-')}",
                    entry.get("reason", ""),
                    entry.get("by", ""),
                )
                for entry in entries
            ),
        )
        return format_html(
            '<table class="warmup-history"><thead><tr><th>at</th><th>decision</th><th>step</th><th>why</th>'
            "<th>by</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def remove(self, request, obj):
        raise PermissionDenied
