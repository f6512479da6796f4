"""The admin's "Bounces and complaints" (monitoring/admin.py imports this): what came back by mail, filtered by kind,
report type, sending IP and time, searched by recipient, sender, sender domain, queue ID or Message-ID. Read only:
`manage.py feedback ingest` and `feedback fetch` are the only writers. Also the webhooks that forward them and their
delivery log."""

from django import forms
from django.contrib import admin, messages
from django.db.models import BooleanField, Value
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from dockspace import outbound_http
from dockspace.admin_base import ReadOnlyAdmin
from monitoring import feedback_webhooks
from monitoring.alert_models import webhook_secret_problem
from monitoring.feedback_models import FeedbackEvent, FeedbackWebhook, FeedbackWebhookDelivery
from monitoring.traffic_admin import SeenFilter

KIND_CSS = {
    FeedbackEvent.HARD: "state-bad",
    FeedbackEvent.COMPLAINT: "state-bad",
    FeedbackEvent.SOFT: "state-warn",
    FeedbackEvent.OTHER: "",
}


class ReceivedFilter(SeenFilter):
    """When the report was read: today, the past 24 hours or 7 days, or between two dates."""

    field = "received_at"
    PRESET, SINCE, UNTIL = "received", "received_from", "received_to"


@admin.register(FeedbackEvent)
class FeedbackEventAdmin(ReadOnlyAdmin):
    view_permission = "monitoring.view_feedbackevent"

    list_display = [
        "received",
        "kind_display",
        "code",
        "recipient_display",
        "original_sender",
        "sending_ip",
        "message_link",
        "reason",
    ]
    list_filter = ["kind", "report_type", ReceivedFilter, "sending_ip"]
    search_fields = ["=recipient", "=original_sender", "=sender_domain", "=queue_id", "=original_message_id"]
    search_help_text = "An exact recipient or sender address, sender domain, queue ID or Message-ID."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    list_select_related = ["message"]
    actions = None
    fields = [
        "received_at",
        "source",
        "kind",
        "reason",
        "report_type",
        "status",
        "action",
        "feedback_type",
        "diagnostic",
        "remote_mta",
        "reporter",
        "recipient",
        "original_sender",
        "sender_domain",
        "original_message_id",
        "queue_id",
        "message_link",
        "sending_ip",
        "source_ip",
        "trace",
        "verp_tag",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        # Whether the message's queue ID links to its story (the messages' admin asks for its own permission).
        may_view = request.user.has_perm("monitoring.view_mailmessage")
        return super().get_queryset(request).annotate(may_view_message=Value(may_view, output_field=BooleanField()))

    def get_search_results(self, request, queryset, search_term):
        # A Message-ID is pasted as the header shows it, with its angle brackets; the traffic stores it without.
        term = search_term.strip()
        if term.startswith("<") and term.endswith(">") and " " not in term:
            search_term = term[1:-1]
        return super().get_search_results(request, queryset, search_term)

    def get_fields(self, request, obj=None):
        return self.fields

    @admin.display(description="received", ordering="received_at")
    def received(self, obj):
        return timezone.localtime(obj.received_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="kind", ordering="kind")
    def kind_display(self, obj):
        return format_html('<span class="{}">{}</span>', KIND_CSS.get(obj.kind, ""), obj.get_kind_display())

    @admin.display(description="status or type")
    def code(self, obj):
        return obj.status or obj.feedback_type or "-"

    @admin.display(description="recipient", ordering="recipient")
    def recipient_display(self, obj):
        return obj.recipient or "-"

    @admin.display(description="message")
    def message_link(self, obj):
        if obj.message_id is None:
            return "not found in the mail traffic"
        if getattr(obj, "may_view_message", False):
            url = reverse("admin:monitoring_mailmessage_change", args=[obj.message_id])
            return format_html('<a href="{}">{}</a>', url, obj.message.queue_id)
        return obj.message.queue_id


class FeedbackWebhookForm(forms.ModelForm):
    new_secret = forms.CharField(
        label="Signing secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty: a new webhook gets a generated secret, shown once after saving, and an existing one "
        "keeps its own. Or paste the receiver's whsec_... secret. Never shown again; the action 'Generate a new "
        "signing secret' replaces it.",
    )

    class Meta:
        model = FeedbackWebhook
        fields = ["name", "url", "is_enabled", "sends_hard_bounces", "sends_soft_bounces", "sends_complaints"]

    def clean_new_secret(self):
        secret = self.cleaned_data.get("new_secret") or ""
        problem = webhook_secret_problem(secret) if secret else ""
        if problem:
            raise forms.ValidationError(f"the signing secret {problem}")
        return secret


@admin.register(FeedbackWebhook)
class FeedbackWebhookAdmin(admin.ModelAdmin):
    """Bounce and complaint webhooks: saved through feedback_webhook_save, which audits it and makes the secret."""

    form = FeedbackWebhookForm
    list_display = ["name", "origin", "is_enabled", "sends_hard_bounces", "sends_soft_bounces", "sends_complaints"]
    list_filter = ["is_enabled"]
    readonly_fields = ["secret_status", "deliveries_link"]
    # Not "new_secret": that is the form's field, and a view-only page shows its fields read only, looking each name up
    # on the admin (an action of that name would be called as a column).
    actions = ["generate_secret"]
    fieldsets = [
        (None, {"fields": ["name", "url", "is_enabled"]}),
        ("Events sent", {"fields": ["sends_hard_bounces", "sends_soft_bounces", "sends_complaints"]}),
        ("Signing (Standard Webhooks)", {"fields": ["secret_status", "new_secret"]}),
        ("Delivery log", {"fields": ["deliveries_link"]}),
    ]

    @admin.display(description="URL")
    def origin(self, obj):
        return outbound_http.origin(obj.url)  # the path may hold a token

    @admin.display(description="signing secret")
    def secret_status(self, obj):
        return "set (stored encrypted; never shown again)" if obj.secret_encrypted else "not set"

    @admin.display(description="deliveries")
    def deliveries_link(self, obj):
        if not obj.pk:
            return "-"
        url = reverse("admin:monitoring_feedbackwebhookdelivery_changelist") + f"?webhook__id__exact={obj.pk}"
        return format_html('<a href="{}">{} deliveries</a>', url, obj.deliveries.count())

    def save_model(self, request, obj, form, change):
        generated = feedback_webhooks.feedback_webhook_save(
            webhook=obj, new_secret=form.cleaned_data.get("new_secret") or "", request=request
        )
        if generated:
            self._show_secret_once(request, obj, generated)

    def _show_secret_once(self, request, obj, secret):
        self.message_user(
            request,
            f"{obj.name}: its signing secret is {secret} — give it to the receiver now; it is not shown again.",
            messages.WARNING,
        )

    def get_fieldsets(self, request, obj=None):
        if self.has_change_permission(request, obj) or (obj is None and self.has_add_permission(request)):
            return self.fieldsets
        # Who may only view it has no secret to type in.
        return [(name, {"fields": [f for f in opts["fields"] if f != "new_secret"]}) for name, opts in self.fieldsets]

    @admin.action(description="Generate a new signing secret (shown once)", permissions=["change"])
    def generate_secret(self, request, queryset):
        for webhook in queryset:
            self._show_secret_once(
                request, webhook, feedback_webhooks.feedback_webhook_new_secret(webhook=webhook, request=request)
            )


@admin.register(FeedbackWebhookDelivery)
class FeedbackWebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log: read only (the drain and the worker write it)."""

    list_display = ["created_at", "event_type", "webhook_name", "status", "attempts", "next_attempt_at", "outcome"]
    list_filter = ["status", "event_type", "webhook"]
    search_fields = ["message_id", "webhook_name", "event__recipient"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "webhook",
        "webhook_name",
        "event",
        "event_type",
        "message_id",
        "payload",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "claimed_at",
        "sent_at",
        "error",
        "answer",
    ]

    @admin.display(description="outcome")
    def outcome(self, obj):
        return obj.answer or obj.error or "-"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
