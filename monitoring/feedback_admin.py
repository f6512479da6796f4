"""The admin's "Bounces and complaints" (monitoring/admin.py imports this): what came back by mail, filtered by kind,
report type, sending IP and time, searched by recipient, sender, sender domain, queue ID or Message-ID. Read only:
`manage.py feedback ingest` is the only writer."""

from django.contrib import admin
from django.db.models import BooleanField, Value
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from monitoring.feedback_models import FeedbackEvent
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
class FeedbackEventAdmin(admin.ModelAdmin):
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

    def has_view_permission(self, request, obj=None):
        # Only who may view them: Django's default lets the change permission stand in, for a page that changes nothing.
        return request.user.has_perm("monitoring.view_feedbackevent")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

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
