"""Admin for monitoring."""

# --- Alerts: rules, alerts (open first), notification channels, notification log --------------------------------
# Operators' actions (acknowledge, silence, send a test) go through monitoring.alert_services, which checks the
# actor's permission and audits; a channel's secret is write-only here: stored encrypted, shown as set / not set.

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html_join

from dockspace import outbound_http
from dockspace.validation import error_summary
from monitoring import (
    alert_services,
    feedback_admin,  # noqa: F401 (registers the bounces and complaints' admin)
    mailhost_admin,  # noqa: F401 (registers the mail host and probe admins)
    traffic_admin,  # noqa: F401 (registers the mail messages' admin)
)
from monitoring.alert_models import (
    MAX_DURATION_SECONDS,
    TELEGRAM_TOKEN_RULE,
    Alert,
    AlertEvent,
    AlertRule,
    NotificationChannel,
    webhook_secret_problem,
)
from monitoring.durations import format_duration, parse_duration
from monitoring.selectors import open_first

SILENCES = [("1h", 3600), ("4h", 4 * 3600), ("24h", 86400), ("7d", 7 * 86400)]


class DurationTextInput(forms.TextInput):
    def format_value(self, value):
        return format_duration(value) if isinstance(value, int) else value


class DurationTextField(forms.Field):
    """Seconds, typed as an operator writes them: 90s, 5m, 4h, 1d, 1h30m (or plain seconds)."""

    widget = DurationTextInput

    def to_python(self, value):
        if value in (None, ""):
            return None
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def validate(self, value):
        super().validate(value)
        if value is not None and value > MAX_DURATION_SECONDS:
            raise ValidationError(f"must be at most {format_duration(MAX_DURATION_SECONDS)}.")


class AlertRuleForm(forms.ModelForm):
    """The rule's own fields, plus one field per threshold its kind declares (threshold_<name>)."""

    for_seconds = DurationTextField(
        label="For", help_text="e.g. 5m: the condition must hold this long before the alert fires (0 fires at once)."
    )
    repeat_seconds = DurationTextField(
        label="Repeat every", help_text="e.g. 4h: while it keeps firing unacknowledged, notify again this often."
    )

    class Meta:
        model = AlertRule
        fields = ["is_enabled", "for_seconds", "repeat_seconds", "notify_resolved", "channels"]
        widgets = {"channels": forms.CheckboxSelectMultiple}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        declared = self.instance.declared if self.instance.pk else None
        self.declared_thresholds = declared.thresholds if declared else ()
        for threshold in self.declared_thresholds:
            number = forms.IntegerField if threshold.integer else forms.FloatField
            value = (self.instance.thresholds or {}).get(threshold.name, threshold.default)
            self.fields[f"threshold_{threshold.name}"] = number(
                label=f"{threshold.label} ({threshold.unit})",
                initial=value,
                min_value=threshold.minimum,
                max_value=threshold.maximum,
                help_text=f"Default {threshold.default:g} {threshold.unit}.",
            )

    def clean(self):
        data = super().clean()
        thresholds = dict(self.instance.thresholds or {})
        for threshold in self.declared_thresholds:
            value = data.get(f"threshold_{threshold.name}")
            if value is not None:
                thresholds[threshold.name] = value
        self.instance.thresholds = thresholds  # checked again by AlertRule.clean(), which names the field
        return data


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = [
        "__str__",
        "is_enabled",
        "threshold_text",
        "for_text",
        "repeat_text",
        "channel_names",
        "open_alerts",
    ]
    list_filter = ["is_enabled"]
    readonly_fields = ["kind", "description", "subject_kind", "last_evaluated_at", "last_error"]

    def has_add_permission(self, request):
        return False  # one rule per declared alert kind, created by the installer

    def has_delete_permission(self, request, obj=None):
        return False  # disable it instead: its alerts are history

    def get_form(self, request, obj=None, **kwargs):
        kwargs["fields"] = None  # the form declares its fields; the threshold fields are added per rule
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request, obj=None):
        declared = obj.declared if obj is not None else None
        thresholds = [f"threshold_{t.name}" for t in declared.thresholds] if declared else []
        return [
            (None, {"fields": ["kind", "description", "subject_kind", "is_enabled"]}),
            ("When it fires", {"fields": [*thresholds, "for_seconds"]}),
            ("Notifications", {"fields": ["channels", "repeat_seconds", "notify_resolved"]}),
            ("Last evaluation", {"fields": ["last_evaluated_at", "last_error"]}),
        ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("channels")

    @admin.display(description="description")
    def description(self, obj):
        declared = obj.declared
        return declared.description if declared else "No installed app declares this alert kind; it is not evaluated."

    @admin.display(description="one alert per")
    def subject_kind(self, obj):
        declared = obj.declared
        return declared.subject_kind if declared else "-"

    @admin.display(description="thresholds")
    def threshold_text(self, obj):
        declared = obj.declared
        if not declared or not declared.thresholds:
            return "-"
        values = declared.view(obj.thresholds or {}, None).thresholds
        return ", ".join(f"{t.label.lower()} {values[t.name]:g} {t.unit}" for t in declared.thresholds)

    @admin.display(description="for")
    def for_text(self, obj):
        return format_duration(obj.for_seconds)

    @admin.display(description="repeat every")
    def repeat_text(self, obj):
        return format_duration(obj.repeat_seconds)

    @admin.display(description="channels")
    def channel_names(self, obj):
        names = [channel.name for channel in obj.channels.all()]
        return ", ".join(names) or "none: nobody is notified"

    @admin.display(description="open alerts")
    def open_alerts(self, obj):
        return obj.alerts.exclude(state=Alert.RESOLVED).count()


class ChannelForm(forms.ModelForm):
    new_secret = forms.CharField(
        label="Secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only: stored encrypted and never shown again; leave empty to keep the current one. Webhook: "
        "the signing secret, whsec_ followed by base64 (generate one with `manage.py alerts new-webhook-secret`). "
        "Telegram: the bot token @BotFather gave you.",
    )
    clear_secret = forms.BooleanField(label="Remove the stored secret", required=False)

    class Meta:
        model = NotificationChannel
        fields = [
            "name",
            "kind",
            "is_enabled",
            "is_default",
            "email_to_staff",
            "email_addresses",
            "webhook_url",
            "telegram_chat_id",
            "secret_env",
        ]

    def clean(self):
        data = super().clean()
        secret = data.get("new_secret") or ""
        kind = data.get("kind")
        if secret:
            problem = ""
            if kind == NotificationChannel.WEBHOOK:
                problem = webhook_secret_problem(secret)
            elif kind == NotificationChannel.TELEGRAM and not TELEGRAM_TOKEN_RULE.match(secret):
                problem = "must be a bot token as @BotFather gives it (digits, ':' and 30+ characters)."
            elif kind == NotificationChannel.EMAIL:
                problem = "an email channel has no secret: leave this empty."
            if problem:
                self.add_error("new_secret", problem)
                # The model's "needs a secret" would repeat this error; an invalid form saves nothing.
                self.instance.secret_encrypted = "refused"
            else:
                self.instance.set_secret(secret)
        elif data.get("clear_secret") or kind == NotificationChannel.EMAIL or "kind" in self.changed_data:
            # A webhook's signing secret is no bot token (and would be sent in Telegram's URL), nor the reverse:
            # a channel that changes kind keeps no secret of its old kind.
            self.instance.secret_encrypted = ""
        return data

    def _post_clean(self):
        super()._post_clean()  # the model's own checks first: only a well-formed URL's address is looked at
        channel = self.instance
        if channel.kind != NotificationChannel.WEBHOOK or not channel.webhook_url or self.has_error("webhook_url"):
            return
        # Early word for the operator only, without asking DNS: every send resolves the name and checks each
        # address it gets (a name pointing at an internal address is refused then, and the notification says so).
        try:
            outbound_http.check_without_lookup(channel.webhook_url.strip())
        except outbound_http.RefusedURL as exc:
            self.add_error("webhook_url", f"the webhook {exc} (in the web and worker processes).")


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    change_form_template = "admin/monitoring/notificationchannel/change_form.html"
    list_display = ["name", "kind", "is_enabled", "is_default", "destination", "secret_status", "last_notification"]
    list_filter = ["kind", "is_enabled"]
    readonly_fields = ["secret_status", "webhook_origin"]
    actions = ["send_test", "attach_to_all_rules"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "is_enabled", "is_default"]}),
        ("Email", {"fields": ["email_to_staff", "email_addresses"]}),
        ("Webhook", {"fields": ["webhook_url"]}),
        ("Telegram", {"fields": ["telegram_chat_id"]}),
        ("Secret (webhook, Telegram)", {"fields": ["secret_status", "secret_env", "new_secret", "clear_secret"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        """Staff who may only view a channel see its webhook's origin: the URL's path may hold a token."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        return [
            (name, {**options, "fields": ["webhook_origin" if f == "webhook_url" else f for f in options["fields"]]})
            for name, options in fieldsets
        ]

    @admin.display(description="webhook URL")
    def webhook_origin(self, obj):
        return (
            f"{outbound_http.origin(obj.webhook_url)}/… (the whole URL is shown to those who may change it)"
            if obj.webhook_url
            else "-"
        )

    @admin.display(description="secret")
    def secret_status(self, obj):
        return obj.secret_state() if obj.pk else "not set"

    @admin.display(description="to")
    def destination(self, obj):
        if obj.kind == obj.EMAIL:
            return ", ".join((["staff"] if obj.email_to_staff else []) + obj.addresses())
        if obj.kind == obj.WEBHOOK:
            return outbound_http.origin(obj.webhook_url)  # the path may hold a token
        return obj.telegram_chat_id

    @admin.display(description="last notification")
    def last_notification(self, obj):
        event = obj.events.order_by("-created_at", "-id").first()
        return f"{event.get_status_display()} {event.created_at:%Y-%m-%d %H:%M}" if event else "-"

    def get_urls(self):
        return [
            path(
                "<path:object_id>/send-test/",
                self.admin_site.admin_view(self.send_test_view),
                name="monitoring_notificationchannel_send_test",
            ),
            *super().get_urls(),
        ]

    def _test(self, request, channel):
        try:
            outcome = alert_services.channel_send_test(channel=channel, request=request)
        except ValidationError as exc:
            self.message_user(request, f"Not sent: {error_summary(exc)}", messages.ERROR)
            return
        self.message_user(request, outcome.text, messages.SUCCESS if outcome.is_sent else messages.ERROR)

    def send_test_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        channel = self.get_object(request, unquote(object_id))
        if channel is None or not self.has_view_permission(request, channel):
            raise PermissionDenied
        self._test(request, channel)  # the service checks the permission to change channels
        return HttpResponseRedirect(reverse("admin:monitoring_notificationchannel_change", args=[channel.pk]))

    @admin.action(description="Send a test notification", permissions=["change"])
    def send_test(self, request, queryset):
        for channel in queryset:
            self._test(request, channel)

    @admin.action(description="Attach to every alert rule", permissions=["change"])
    def attach_to_all_rules(self, request, queryset):
        for channel in queryset:
            try:
                count = alert_services.channel_attach_to_all_rules(channel=channel, request=request)
            except ValidationError as exc:
                self.message_user(request, f"{channel.name}: {error_summary(exc)}", messages.ERROR)
                return
            self.message_user(request, f"{channel.name}: attached to {count} more alert rule(s).", messages.SUCCESS)


class OpenFirst(admin.SimpleListFilter):
    title = "open"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "open (firing or pending)"), ("no", "resolved")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(state=Alert.RESOLVED)
        if self.value() == "no":
            return queryset.filter(state=Alert.RESOLVED)
        return queryset


def _silence_action(label, seconds):
    @admin.action(description=f"Silence for {label} (send nothing)", permissions=["change"])
    def silence(modeladmin, request, queryset):
        modeladmin._run(request, queryset, alert_services.alert_silence, f"Silenced for {label}:", seconds=seconds)

    silence.__name__ = f"silence_{label}"
    return silence


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    change_form_template = "admin/monitoring/alert/change_form.html"
    list_display = [
        "state",
        "rule",
        "subject",
        "summary",
        "pending_since",
        "fired_at",
        "resolved_at",
        "acknowledged",
        "silenced_until",
        "reopen_count",
    ]
    list_display_links = ["rule", "subject"]
    list_filter = [OpenFirst, "state", "rule"]
    search_fields = ["subject", "summary"]
    list_select_related = ["rule", "acknowledged_by"]
    actions = ["acknowledge", "end_silence", *[_silence_action(label, seconds) for label, seconds in SILENCES]]
    fields = [
        "rule",
        "subject",
        "state",
        "value",
        "summary",
        "first_seen_at",
        "pending_since",
        "last_seen_at",
        "fired_at",
        "resolved_at",
        "last_notified_at",
        "reopen_count",
        "acknowledged_by",
        "acknowledged_at",
        "silenced_until",
        "notifications",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return open_first(super().get_queryset(request))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # No form to edit an alert (the page is read-only); acknowledging and silencing need the permission.
        return obj is None and super().has_change_permission(request)

    @admin.display(description="acknowledged")
    def acknowledged(self, obj):
        if obj.acknowledged_at is None:
            return "-"
        return f"{obj.acknowledged_by or 'someone'} {obj.acknowledged_at:%Y-%m-%d %H:%M}"

    @admin.display(description="notifications")
    def notifications(self, obj):
        events = obj.events.order_by("-created_at", "-id")[:20]
        return (
            format_html_join(
                "",
                "<div>{} {} &rarr; {}: {}{}</div>",
                (
                    (
                        f"{event.created_at:%Y-%m-%d %H:%M:%S}",
                        event.get_kind_display(),
                        event.channel_name,
                        event.get_status_display(),
                        f" ({event.error})" if event.error else "",
                    )
                    for event in events
                ),
            )
            or "-"
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {
            "may_act": super().has_change_permission(request),
            "silences": [label for label, _ in SILENCES],
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self):
        return [
            path("<path:object_id>/act/", self.admin_site.admin_view(self.act_view), name="monitoring_alert_act"),
            *super().get_urls(),
        ]

    def act_view(self, request, object_id):
        """The buttons on an alert's page: acknowledge, silence for a while, end the silence."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        alert = self.get_object(request, unquote(object_id))
        if alert is None or not self.has_view_permission(request, alert):
            raise PermissionDenied
        action = request.POST.get("action", "")
        silences = dict(SILENCES)
        if action == "acknowledge":
            self._run(request, [alert], alert_services.alert_acknowledge, "Acknowledged")
        elif action == "end_silence":
            self._run(request, [alert], alert_services.alert_silence, "Silence ended for", seconds=0)
        elif action.removeprefix("silence_") in silences:
            label = action.removeprefix("silence_")
            seconds = silences[label]
            self._run(request, [alert], alert_services.alert_silence, f"Silenced for {label}:", seconds=seconds)
        else:
            self.message_user(request, "Unknown action.", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:monitoring_alert_change", args=[alert.pk]))

    def _run(self, request, alerts, service, done, **kwargs):
        for alert in alerts:
            try:
                service(alert=alert, request=request, **kwargs)
            except ValidationError as exc:
                self.message_user(request, f"{alert}: {error_summary(exc)}", messages.ERROR)
            else:
                self.message_user(request, f"{done} {alert}.", messages.SUCCESS)

    @admin.action(description="Acknowledge (stop repeating)", permissions=["change"])
    def acknowledge(self, request, queryset):
        self._run(request, queryset, alert_services.alert_acknowledge, "Acknowledged")

    @admin.action(description="End the silence", permissions=["change"])
    def end_silence(self, request, queryset):
        self._run(request, queryset, alert_services.alert_silence, "Silence ended for", seconds=0)


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "title", "channel_name", "status", "attempts", "sent_at", "error"]
    list_filter = ["kind", "status", "channel_name"]
    search_fields = ["title", "channel_name", "error"]
    fields = [
        "created_at",
        "kind",
        "title",
        "alert",
        "channel_name",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "error",
        "message_id",
        "payload",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
