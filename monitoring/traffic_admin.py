"""The admin's "Messages" (monitoring/admin.py imports this): the mail the logs told of, searched by address, queue ID
or Message-ID, filtered by state, direction, time and log source; one message's page shows its whole story. Read
only: the mail log is the only writer, nothing is added, changed or deleted here."""

from datetime import date, datetime, time, timedelta

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ERROR_FLAG, PAGE_VAR
from django.db.models import Prefetch
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.html import format_html

from dockspace.admin_base import ReadOnlyAdmin
from monitoring.traffic_models import DeliveryAttempt, MailMessage
from monitoring.traffic_pages import message_search, message_story

SHOWN_RECIPIENTS = 3
# The first attempts of each listed message (a message to a thousand recipients loads this many, not a thousand).
LISTED_ATTEMPTS = 20
STATE_CSS = {
    MailMessage.DELIVERED: "state-ok",
    MailMessage.QUEUED: "",
    MailMessage.DEFERRED: "state-warn",
    MailMessage.MIXED: "state-warn",
    MailMessage.BOUNCED: "state-bad",
    MailMessage.EXPIRED: "state-bad",
    MailMessage.REJECTED: "state-bad",
    MailMessage.HELD: "state-warn",
    MailMessage.DISCARDED: "state-bad",
}
STATUS_CSS = {
    DeliveryAttempt.SENT: "state-ok",
    DeliveryAttempt.DEFERRED: "state-warn",
    DeliveryAttempt.BOUNCED: "state-bad",
    DeliveryAttempt.EXPIRED: "state-bad",
}


class SeenFilter(admin.ListFilter):
    """When the message arrived: today, the past 24 hours or 7 days, or between two dates (both included)."""

    title = "time"
    template = "admin/monitoring/traffic/time_filter.html"
    field = "first_seen_at"  # the time it filters on (the bounces and complaints' list uses received_at)
    PRESET, SINCE, UNTIL = "seen", "seen_from", "seen_to"
    PRESETS = [("today", "Today"), ("24h", "Past 24 hours"), ("7d", "Past 7 days")]

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        for name in self.expected_parameters():
            if name in params:
                self.used_parameters[name] = params.pop(name)[-1]
        self.since = self._date(request, self.SINCE, "From")
        self.until = self._date(request, self.UNTIL, "To")
        self.hidden_parameters = []

    def _date(self, request, name, label):
        text = self.used_parameters.get(name, "").strip()
        if not text:
            return None
        try:
            day = date.fromisoformat(text)
        except ValueError:
            messages.error(request, f"{label}: {text!r} is not a date; enter it as YYYY-MM-DD (e.g. 2026-12-06).")
            return None
        if not 1900 <= day.year <= 9000:  # the ends of datetime's range overflow in time zone conversions
            messages.error(request, f"{label}: {text!r} is outside the years 1900 to 9000.")
            return None
        return day

    def has_output(self):
        return True

    def expected_parameters(self):
        return [self.PRESET, self.SINCE, self.UNTIL]

    def choices(self, changelist):
        # The date form keeps the page's other parameters (search, other filters, ordering) as hidden fields.
        own = {*self.expected_parameters(), PAGE_VAR, ERROR_FLAG}
        self.hidden_parameters = [
            (name, value) for name, values in self.request.GET.lists() if name not in own for value in values
        ]
        preset = self.used_parameters.get(self.PRESET)
        ranged = self.since is not None or self.until is not None
        yield {
            "selected": preset is None and not ranged,
            "query_string": changelist.get_query_string(remove=self.expected_parameters()),
            "display": "Any time",
        }
        for value, label in self.PRESETS:
            yield {
                "selected": preset == value and not ranged,
                "query_string": changelist.get_query_string({self.PRESET: value}, [self.SINCE, self.UNTIL]),
                "display": label,
            }

    def queryset(self, request, queryset):
        zone = timezone.get_current_timezone()
        if self.since is not None or self.until is not None:
            if self.since is not None:
                queryset = queryset.filter(**{f"{self.field}__gte": datetime.combine(self.since, time(), zone)})
            if self.until is not None:
                end = datetime.combine(self.until + timedelta(days=1), time(), zone)
                queryset = queryset.filter(**{f"{self.field}__lt": end})
            return queryset
        now = timezone.now()
        starts = {
            "today": datetime.combine(timezone.localdate(now), time(), zone),
            "24h": now - timedelta(hours=24),
            "7d": now - timedelta(days=7),
        }
        start = starts.get(self.used_parameters.get(self.PRESET, ""))
        return queryset.filter(**{f"{self.field}__gte": start}) if start is not None else queryset


@admin.register(MailMessage)
class MailMessageAdmin(ReadOnlyAdmin):
    # The story and the search are for who may view messages (monitoring.traffic_pages checks it).
    view_permission = "monitoring.view_mailmessage"

    change_form_template = "admin/monitoring/traffic/message.html"
    list_display = ["seen_at", "direction", "sender_display", "recipients", "size_display", "state_display", "sasl"]
    list_filter = ["state", "direction", SeenFilter, "source"]
    search_fields = ["queue_id"]  # shows the search box; message_search does the searching
    search_help_text = (
        "An exact sender or recipient address, queue ID or Message-ID; several words: messages matching all of them."
    )
    show_full_result_count = False  # no second COUNT(*) over the whole history on each page
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    actions = None
    fields = ["queue_id"]  # the page shows the story instead (message.html)
    readonly_fields = fields

    def get_queryset(self, request):
        first = DeliveryAttempt.objects.order_by("at", "id").only("message", "recipient")[:LISTED_ATTEMPTS]
        return (
            super()
            .get_queryset(request)
            .defer("line_key")
            .prefetch_related(Prefetch("attempts", queryset=first, to_attr="first_attempts"))
        )

    def get_search_results(self, request, queryset, search_term):
        return message_search(request.user, queryset, search_term), False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        message = self.get_object(request, unquote(object_id))
        extra = {}
        if message is not None and self.has_view_permission(request, message):
            story = message_story(request.user, message)
            for attempt in story.attempts:
                attempt.css = STATUS_CSS.get(attempt.status, "")
            extra = {"story": story, "state_css": STATE_CSS.get(message.state, "")}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    @admin.display(description="time", ordering="first_seen_at")
    def seen_at(self, obj):
        return timezone.localtime(obj.first_seen_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="sender", ordering="sender")
    def sender_display(self, obj):
        return obj.sender or "<> (bounce)"

    @admin.display(description="recipients")
    def recipients(self, obj):
        shown = list(dict.fromkeys(a.recipient for a in obj.first_attempts))
        more = max((obj.nrcpt or 0) - SHOWN_RECIPIENTS, len(shown) - SHOWN_RECIPIENTS, 0)
        text = ", ".join(shown[:SHOWN_RECIPIENTS]) or "-"
        return f"{text} and {more} more" if more else text

    @admin.display(description="size", ordering="size")
    def size_display(self, obj):
        return "-" if obj.size is None else filesizeformat(obj.size)

    @admin.display(description="state", ordering="state")
    def state_display(self, obj):
        return format_html('<span class="{}">{}</span>', STATE_CSS.get(obj.state, ""), obj.get_state_display())

    @admin.display(description="SASL user", ordering="sasl_username")
    def sasl(self, obj):
        return obj.sasl_username or "-"
