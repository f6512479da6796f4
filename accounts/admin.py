"""Admin for people, app settings, lockouts, sessions, the audit log and outbound mail."""

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import outbox, services
from accounts.audit import audit
from accounts.authz import may_manage_person
from accounts.forms import EmailField
from accounts.models import AppSettings, AuditEvent, LoginThrottle, OutboundMessage, User, UserSession
from accounts.reset_mail import password_reset_mail_queue
from accounts.sessions import forget_revoked_session
from dockspace.canonical import unicode_address
from dockspace.csv_cells import SafeCsvWriter


class UserCreationForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "full_name")
        field_classes = {"email": EmailField}


class UserChangeForm(DjangoUserChangeForm):
    class Meta:
        model = User
        fields = "__all__"
        field_classes = {"email": EmailField}

    def clean(self):
        data = super().clean()
        if self.instance.pk and "is_active" in self.changed_data and not data.get("is_active"):
            try:
                services.person_deactivate_check(user=self.instance)  # the service asks again when it runs
            except ValidationError as e:
                self.add_error(None, e)
        if self.instance.pk and "is_superuser" in self.changed_data and not data.get("is_superuser"):
            try:
                services.person_deactivate_check(user=self.instance, field="is_superuser")
            except ValidationError as e:
                self.add_error(None, e)
        return data


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ["email"]
    list_display = ["email_display", "full_name", "is_staff", "is_active", "has_second_factor", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active", "is_pending_registration"]
    search_fields = ["email", "full_name", "uuid"]
    readonly_fields = [
        "uuid",
        "last_login",
        "date_joined",
        "email_verified_at",
        "is_pending_registration",
        "mailbox_address",
        "group_names",
    ]
    fieldsets = [
        (None, {"fields": ["email", "password", "uuid"]}),
        ("Personal info", {"fields": ["full_name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "user_permissions"]}),
        ("Mail and groups", {"fields": ["mailbox_address", "group_names"]}),
        ("Dates", {"fields": ["last_login", "date_joined", "email_verified_at", "is_pending_registration"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "full_name", "password1", "password2"]})]
    actions = ["deactivate", "reset_second_factor", "revoke_sessions", "clear_lockouts", "send_password_reset"]
    # Who holds which powers: only a superuser hands them out (docs/security.md).
    PRIVILEGE_FIELDS = ["is_superuser", "is_staff", "groups", "user_permissions"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += [f for f in self.PRIVILEGE_FIELDS if f not in fields]
        return fields

    def has_change_permission(self, request, obj=None):
        # Covers the change form and the password form (Django checks this before either).
        return super().has_change_permission(request, obj) and (obj is None or may_manage_person(request.user, obj))

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (obj is None or may_manage_person(request.user, obj))

    def delete_queryset(self, request, queryset):
        if any(not may_manage_person(request.user, user) for user in queryset):
            raise PermissionDenied
        super().delete_queryset(request, queryset)

    def get_deleted_objects(self, objs, request):
        """A person's browser sessions go with them: the right to delete the person (checked above, person by
        person) covers them, although sessions alone are never deleted by the admin's generic delete."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(UserSession._meta.verbose_name)
        doomed = {user.pk for user in objs}
        if any(user.is_superuser and user.is_active for user in objs) and not (
            User.objects.filter(is_superuser=True, is_active=True).exclude(pk__in=doomed).exists()
        ):
            # Nobody would be left to hand out powers: shown as a refusal on the confirmation page, and the
            # POST is refused by Django for the same reason.
            perms_needed.add("the last active superuser (make another superuser first)")
        return deleted, model_count, perms_needed, protected

    def save_model(self, request, obj, form, change):
        if change and "is_active" in form.changed_data and not obj.is_active:
            # Sessions and app tokens end now, so ticking "Active" again does not bring them back. Before the save:
            # the service refuses the last active superuser while the database still shows them active.
            services.person_deactivate(user=obj, request=request)
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and obj.is_active and obj.is_pending_registration:
            services.registration_pending_end(user=obj, request=request)

    def response_change(self, request, obj):
        if forget_revoked_session(request):  # the staff member switched themselves off
            return HttpResponseRedirect(reverse("accounts:login"))
        return super().response_change(request, obj)

    @admin.action(description="Deactivate (they cannot sign in; sessions and app tokens end)", permissions=["change"])
    def deactivate(self, request, queryset):
        targets = self._allowed_targets(request, queryset)
        if not targets:
            return  # the refusal says it all: no green "0 people" beside it
        try:
            with transaction.atomic():  # all or nothing
                for user in targets:
                    services.person_deactivate(user=user, request=request)
        except ValidationError as e:
            self.message_user(request, "Nothing was changed: " + " ".join(e.messages), messages.ERROR)
            return
        if forget_revoked_session(request):
            return HttpResponseRedirect(reverse("accounts:login"))
        self.message_user(request, f"Deactivated {len(targets)} person(s).", messages.SUCCESS)

    @admin.display(description="email address", ordering="email")
    def email_display(self, obj):
        return unicode_address(obj.email, with_ascii=True)

    @admin.display(description="mailbox")
    def mailbox_address(self, obj):
        mailbox = getattr(obj, "mailbox", None)
        return f"{unicode_address(mailbox.address, with_ascii=True)} ({mailbox.state})" if mailbox else "none"

    @admin.display(description="groups")
    def group_names(self, obj):
        return ", ".join(obj.member_groups.values_list("name", flat=True)) or "none"

    @admin.display(boolean=True, description="2FA")
    def has_second_factor(self, obj):
        return TOTPDevice.objects.filter(user=obj, confirmed=True).exists()

    def _allowed_targets(self, request, queryset):
        """Only people whose sign-in the actor may manage (a superuser's only by a superuser)."""
        allowed = [user for user in queryset if may_manage_person(request.user, user)]
        refused = [user.email for user in queryset if user not in allowed]
        if refused:
            self.message_user(
                request, f"Only a superuser can do this to a superuser: skipped {', '.join(refused)}.", messages.ERROR
            )
        return allowed

    @admin.action(description="Reset second factor (remove TOTP devices and backup codes)", permissions=["change"])
    def reset_second_factor(self, request, queryset):
        targets = self._allowed_targets(request, queryset)
        if not targets:
            return
        for user in targets:
            services.second_factor_reset(user=user, request=request)
        forget_revoked_session(request)
        self.message_user(request, f"Second factor reset for {len(targets)} person(s).", messages.SUCCESS)

    @admin.action(description="Sign out everywhere (revoke all sessions)", permissions=["change"])
    def revoke_sessions(self, request, queryset):
        targets = self._allowed_targets(request, queryset)
        if not targets:
            return
        total = sum(services.sessions_revoke_all(user=u, request=request) for u in targets)
        if forget_revoked_session(request):
            return HttpResponseRedirect(reverse("accounts:login"))
        if total:
            self.message_user(request, f"Revoked {total} session(s).", messages.SUCCESS)
        else:
            self.message_user(request, "Nothing to revoke: they had no open sessions.", messages.INFO)

    def user_change_password(self, request, id, form_url=""):
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            # A password set by an administrator ends every session that knew the old one.
            services.sessions_revoke_all(user=self.get_object(request, id), request=request)
            if forget_revoked_session(request):
                return HttpResponseRedirect(reverse("accounts:login"))
        return response

    @admin.action(description="Clear sign-in lockouts", permissions=["change"])
    def clear_lockouts(self, request, queryset):
        emails = [user.email for user in self._allowed_targets(request, queryset)]
        if not emails:
            return
        count = services.lockouts_clear(
            throttles=LoginThrottle.objects.filter(scope=LoginThrottle.SCOPE_ACCOUNT, key__in=emails), request=request
        )
        if count:
            self.message_user(request, f"Cleared {count} lockout(s).", messages.SUCCESS)
        else:
            self.message_user(request, "Nothing to clear: they were not locked out.", messages.INFO)

    @admin.action(description="Send password-reset link", permissions=["change"])
    def send_password_reset(self, request, queryset):
        for user in queryset:
            password_reset_mail_queue(user.email, by_administrator=True)
            audit("password.reset_sent", request=request, target=user, description="Administrator sent a reset link.")
        self.message_user(request, f"Sent reset links to {queryset.count()} person(s).", messages.SUCCESS)


@admin.register(AppSettings)
class AppSettingsAdmin(admin.ModelAdmin):
    fieldsets = [
        (None, {"fields": ["site_name"]}),
        (
            "Sign-in",
            {"fields": ["self_registration_enabled", "totp_required_for_staff", "session_idle_timeout_minutes"]},
        ),
        ("Lockouts", {"fields": ["lockout_account_failures", "lockout_ip_failures", "lockout_minutes"]}),
        ("Audit log", {"fields": ["audit_retention_days"]}),
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        AppSettings.load()
        return HttpResponseRedirect(reverse("admin:accounts_appsettings_change", args=[1]))


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DeletedOnlyByAction:
    """Rows that go away only through the admin's own action, whose service checks whose they are (a lockout's
    or a session's person): Django's generic delete checks nothing but the model permission, so it is off.
    The delete permission still gates that action."""

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None):
        return obj is None and super().has_delete_permission(request)

    def run_service(self, request, call, *, refused, done):
        """The action's service call: its count in `done`, or its refusal after `refused`, nothing changed."""
        try:
            count = call()
        except ValidationError as e:
            self.message_user(request, refused + " ".join(e.messages), messages.ERROR)
            return
        self.message_user(request, done.format(count), messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_label", "ip", "action", "target_label", "description"]
    list_filter = ["action", "at", "target_type"]
    search_fields = ["actor_label", "target_label", "description", "ip", "action"]
    date_hierarchy = "at"
    list_per_page = 100
    actions = ["export_selected"]
    change_list_template = "admin/accounts/auditevent/change_list.html"
    CSV_FIELDS = ["at", "actor_label", "ip", "action", "target_type", "target_id", "target_label", "description"]

    def has_delete_permission(self, request, obj=None):
        return False  # the log is purged only by its retention period

    def get_urls(self):
        return [
            path("export/", self.admin_site.admin_view(self.export_view), name="accounts_auditevent_export")
        ] + super().get_urls()

    def _csv_response(self, queryset):
        class Echo:
            def write(self, value):
                return value

        writer = SafeCsvWriter(Echo())

        def rows():
            yield writer.writerow(self.CSV_FIELDS)
            for event in queryset.iterator(chunk_size=2000):
                yield writer.writerow([getattr(event, name) for name in self.CSV_FIELDS])

        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="dockspace-audit-{stamp}.csv"'
        return response

    def export_view(self, request):
        """The whole log as CSV, with the search and filters of the list page applied."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            self.message_user(request, "Those filters do not apply to the audit log.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:accounts_auditevent_changelist"))
        audit("audit.export", request=request, description="Exported the audit log as CSV.")
        return self._csv_response(changelist.get_queryset(request))

    @admin.action(description="Export selected events as CSV")
    def export_selected(self, request, queryset):
        audit("audit.export", request=request, description=f"Exported {queryset.count()} audit events as CSV.")
        return self._csv_response(queryset)


@admin.register(LoginThrottle)
class LoginThrottleAdmin(DeletedOnlyByAction, ReadOnlyAdmin):
    list_display = ["scope", "key", "failures", "locked_until", "is_locked_now"]
    list_filter = ["scope"]
    search_fields = ["key"]
    actions = ["clear"]

    @admin.display(boolean=True, description="Locked now")
    def is_locked_now(self, obj):
        return obj.is_locked()

    @admin.action(description="Clear the selected lockouts", permissions=["delete"])
    def clear(self, request, queryset):
        self.run_service(
            request,
            lambda: services.lockouts_clear(throttles=queryset, request=request),
            refused="Nothing was cleared: ",
            done="Cleared {} lockout(s).",
        )


@admin.register(UserSession)
class UserSessionAdmin(DeletedOnlyByAction, ReadOnlyAdmin):
    list_display = ["user", "ip", "user_agent", "last_seen_at", "created_at", "expire_date"]
    list_filter = ["last_seen_at"]
    search_fields = ["user__email", "ip", "user_agent"]
    exclude = ["session_data"]
    list_select_related = ["user"]
    actions = ["end_sessions"]

    @admin.action(description="End the selected sessions (sign those browsers out)", permissions=["delete"])
    def end_sessions(self, request, queryset):
        self.run_service(
            request,
            lambda: services.sessions_end(sessions=queryset, request=request),
            refused="Nothing was ended: ",
            done="Ended {} browser session(s).",
        )


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdmin):
    """What Dockspace sent or is trying to send. The body is never shown nor searched: it may hold a reset or
    registration link, which would let whoever reads it take over the account."""

    list_display = ["created_at", "to", "subject", "kind", "status", "attempts", "next_attempt", "last_error"]
    list_filter = ["status", "kind", "sent_via"]
    search_fields = ["recipients", "subject"]
    fields = [
        "to",
        "from_email",
        "subject",
        "kind",
        "status",
        "attempts",
        "next_attempt",
        "last_error",
        "created_at",
        "sent_at",
        "sent_via",
        "has_body",
    ]
    readonly_fields = fields
    date_hierarchy = "created_at"
    list_per_page = 100
    actions = ["retry_now"]

    def has_delete_permission(self, request, obj=None):
        return False  # rows go by the retention period (accounts.outbox_delivery.KEEP_DAYS)

    def has_retry_permission(self, request):
        return request.user.has_perm(outbox.RETRY_PERMISSION)

    @admin.display(description="to")
    def to(self, obj):
        return ", ".join(unicode_address(address, with_ascii=True) for address in obj.recipients)

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt(self, obj):
        return obj.next_attempt_at if obj.status == OutboundMessage.QUEUED else "-"

    @admin.display(boolean=True, description="body kept (until sent or given up)")
    def has_body(self, obj):
        return obj.has_body

    @admin.action(description="Retry now", permissions=["retry"])
    def retry_now(self, request, queryset):
        try:
            count = outbox.outbound_messages_retry(messages=queryset, request=request)
        except ValidationError as e:
            self.message_user(request, "Nothing was retried: " + " ".join(e.messages), messages.ERROR)
            return
        self.message_user(request, f"Sending {count} message(s) now.", messages.SUCCESS)
