"""Admin for domains, tiers, mailboxes, aliases, groups, DKIM keys and the DMS sync state.

Forms and actions go through mail.services, like the commands do."""

from django.apps import apps as django_apps
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from accounts.audit import audit
from accounts.authz import may_manage_person
from accounts.reset_mail import password_reset_mail_queue
from dockspace.admin_base import ServiceAdmin
from dockspace.canonical import unicode_address
from dockspace.validation import error_summary
from mail import forms, services
from mail.dkim import dns_record_value
from mail.dms import sync
from mail.models import Alias, DkimKey, DmsSyncState, Domain, Group, Mailbox, Tier
from mail.quota import format_quota
from mail.quota_usage import domain_usage, humanize_size, mailbox_usage


def _quota(value):
    return "-" if value is None else format_quota(value)


def _quota_bar(use):
    return render_to_string("mail/quota_bar.html", {"use": use})


def _shown(text):
    """'anna@xn--bcher-kva.de' -> 'anna@bücher.de (anna@xn--bcher-kva.de)': operators read international names
    in their own letters, with the stored form beside it (what DMS files, DNS and the search box hold)."""
    return unicode_address(text, with_ascii=True)


class DomainListFilter(admin.RelatedFieldListFilter):
    """The 'By domain' filter, international names shown like everywhere else in the admin."""

    def field_choices(self, field, request, model_admin):
        return [(domain.pk, _shown(domain.name)) for domain in Domain.objects.order_by("name")]


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    form = forms.TierForm
    list_display = [
        "name",
        "max_mailboxes",
        "max_aliases",
        "max_quota",
        "total",
        "default",
        "daily_send_limit",
        "daily_domain_send_limit",
        "max_recipients_per_message",
        "domains",
    ]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(domain_count=Count("domains"))

    def save_model(self, request, obj, form, change):
        services.tier_save(tier=obj, request=request)

    @admin.display(description="max quota")
    def max_quota(self, obj):
        return _quota(obj.max_quota_per_mailbox)

    @admin.display(description="total quota")
    def total(self, obj):
        return _quota(obj.total_quota)

    @admin.display(description="default quota")
    def default(self, obj):
        return _quota(obj.default_quota)

    @admin.display(ordering="domain_count")
    def domains(self, obj):
        return obj.domain_count


def _key_size(key):
    """RSA keys have a size; an Ed25519 key is always 256 bits, which the row stores as 0."""
    return key.bits or "256 (Ed25519)"


class DkimKeyInline(admin.TabularInline):
    model = DkimKey
    extra = 0
    can_delete = False
    fields = ["selector", "state", "algorithm", "key_size", "created_at", "dns_record"]
    readonly_fields = fields

    key_size = admin.display(description="bits")(lambda self, obj: _key_size(obj))

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="DNS TXT record to publish")
    def dns_record(self, obj):
        if obj.state == DkimKey.RETIRED:
            return "remove it from DNS"
        return format_html(
            "<code>{}._domainkey.{}</code><br><code class='break-anywhere'>{}</code>",
            obj.selector,
            obj.domain.name,
            dns_record_value(obj.algorithm, obj.public_key_b64),
        )


def _admin_panels(hook, request, obj):
    panels = []
    for config in django_apps.get_app_configs():
        panel = getattr(config, hook, None)
        html = panel(request, obj) if panel is not None else ""
        if html:
            panels.append(mark_safe(html))  # noqa: S308 (the app rendered it with an autoescaping template)
    return panels


def domain_admin_panels(request, domain):
    """What apps above mail show on a domain's admin page (deliverability: its DNS checks). The seam: an AppConfig
    with `domain_admin_panel(request, domain)` returns HTML (safe, rendered by a template) or ""."""
    return _admin_panels("domain_admin_panel", request, domain)


def mailbox_admin_panels(request, mailbox):
    """What apps above mail show on a mailbox's admin page (monitoring: its mail in the last 30 days). The seam: an
    AppConfig with `mailbox_admin_panel(request, mailbox)` returns HTML (safe, rendered by a template) or ""."""
    return _admin_panels("mailbox_admin_panel", request, mailbox)


def domain_list_columns(request):
    """Columns that apps above mail add to the domain list (deliverability: the worst level of the latest DNS checks).
    The seam: an AppConfig with `domain_list_columns(request)` returns callables, each taking a domain and returning
    its cell (safe HTML or text) and titled by `admin.display(description=...)`; [] for a viewer who may not see
    them. A callable is made per request, so it may load what the page needs once."""
    columns = []
    for config in django_apps.get_app_configs():
        hook = getattr(config, "domain_list_columns", None)
        if hook is not None:
            columns.extend(hook(request))
    return columns


@admin.register(Domain)
class DomainAdmin(ServiceAdmin):
    form = forms.DomainForm
    change_form_template = "admin/mail/domain/change_form.html"
    list_display = ["domain_name", "is_active", "tier", "default", "mailbox_count", "alias_count", "dkim"]
    list_filter = ["is_active", "tier"]
    search_fields = ["name"]
    inlines = [DkimKeyInline]
    actions = ["generate_dkim", "rotate_dkim"]

    def get_list_display(self, request):
        return [*super().get_list_display(request), *domain_list_columns(request)]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("tier")
            .prefetch_related(
                Prefetch("dkim_keys", DkimKey.objects.filter(state=DkimKey.ACTIVE), to_attr="active_keys")
            )
            .annotate(mailbox_count=Count("mailboxes", distinct=True), alias_count=Count("aliases", distinct=True))
        )

    def get_readonly_fields(self, request, obj=None):
        return ["domain_name", "quota_use"] if obj else []

    def get_exclude(self, request, obj=None):
        return ["name"] if obj else None  # a domain is never renamed: shown read-only as domain_name

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not obj:
            return fields
        others = [f for f in fields if f not in ("domain_name", "quota_use")]
        return ["domain_name", *others, "quota_use"]

    def get_inlines(self, request, obj):
        return self.inlines if obj else []  # a new domain has no keys yet

    def change_view(self, request, object_id, form_url="", extra_context=None):
        domain = self.get_object(request, unquote(object_id))
        panels = domain_admin_panels(request, domain) if domain is not None else []
        return super().change_view(request, object_id, form_url, {"domain_panels": panels, **(extra_context or {})})

    @admin.display(description="name", ordering="name")
    def domain_name(self, obj):
        return _shown(obj.name)

    @admin.display(description="quota use")
    def quota_use(self, obj):
        """The domain's measured total and its fullest mailboxes (mail.quota_usage's seam)."""
        usage = domain_usage(obj)
        if not usage.measured:
            return "not measured yet"
        pks = dict(obj.mailboxes.filter(address__in=[a for a, _ in usage.largest]).values_list("address", "pk"))
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td></tr>',
            (
                (reverse("admin:mail_mailbox_change", args=[pks[address]]), _shown(address), _quota_bar(use))
                for address, use in usage.largest
            ),
        )
        return format_html(
            '<p>{} used by {} of {} mailboxes measured.</p><table class="quota-table" id="domain-quota-use">'
            "<thead><tr><th>Largest mailboxes</th><th>Used / limit</th></tr></thead><tbody>{}</tbody></table>",
            humanize_size(usage.used_bytes),
            usage.measured,
            usage.mailboxes,
            rows,
        )

    @admin.display(description="default quota")
    def default(self, obj):
        return _quota(obj.default_quota)

    @admin.display(description="mailboxes", ordering="mailbox_count")
    def mailbox_count(self, obj):
        return obj.mailbox_count

    @admin.display(description="aliases", ordering="alias_count")
    def alias_count(self, obj):
        return obj.alias_count

    @admin.display(description="DKIM")
    def dkim(self, obj):
        return obj.active_keys[0].selector if obj.active_keys else "-"

    def remove(self, request, obj):
        services.domain_remove(domain=obj, request=request)

    def _dkim_action(self, request, queryset, service, verb):
        done = []
        for domain in queryset:
            try:
                service(domain=domain, request=request)
                done.append(domain.name)
            except ValidationError as e:
                self.message_user(request, f"{domain.name}: {error_summary(e)}", messages.ERROR)
        if done:
            self.message_user(
                request,
                f"{verb} DKIM keys for {', '.join(done)}. Publish the TXT records shown on each domain's page; "
                "with OpenDKIM, recreate the mailserver container (a restart does not apply new keys).",
                messages.SUCCESS,
            )

    @admin.action(description="Generate a DKIM key", permissions=["change"])
    def generate_dkim(self, request, queryset):
        self._dkim_action(request, queryset, services.dkim_generate, "Generated")

    @admin.action(description="Rotate the DKIM key (old one stays published)", permissions=["change"])
    def rotate_dkim(self, request, queryset):
        self._dkim_action(request, queryset, services.dkim_rotate, "Rotated")


@admin.register(Mailbox)
class MailboxAdmin(ServiceAdmin):
    change_form_template = "admin/mail/mailbox/change_form.html"
    list_display = ["address_display", "person_name", "quota_display", "state", "domain_display"]
    list_filter = ["state", ("domain", DomainListFilter)]
    search_fields = ["address", "person__full_name", "person__email"]
    list_select_related = ["person", "domain"]
    actions = ["suspend", "resume", "disable", "send_reset_link"]

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = forms.MailboxChangeForm if obj else forms.MailboxAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            fields = [("local_part", "domain"), "full_name", "quota", "password1", "password2", "person"]
            return [(None, {"fields": fields})]
        fields = ["address_display", "person_display", "state", "full_name", "quota", "quota_use"]
        if may_manage_person(request.user, obj.person):
            fields.append("new_password")  # offered only to those the service lets set it
        return [
            (None, {"fields": fields}),
            ("Reaches this mailbox", {"fields": ["reached_by"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        return ["address_display", "person_display", "state", "quota_use", "reached_by"] if obj else []

    def change_view(self, request, object_id, form_url="", extra_context=None):
        mailbox = self.get_object(request, unquote(object_id))
        panels = mailbox_admin_panels(request, mailbox) if mailbox is not None else []
        return super().change_view(request, object_id, form_url, {"mailbox_panels": panels, **(extra_context or {})})

    @admin.display(description="address", ordering="address")
    def address_display(self, obj):
        return _shown(obj.address)

    @admin.display(description="domain", ordering="domain__name")
    def domain_display(self, obj):
        return _shown(obj.domain.name)

    @admin.display(description="person")
    def person_display(self, obj):
        url = reverse("admin:accounts_user_change", args=[obj.person.pk])
        return format_html('<a href="{}">{}</a>', url, _shown(obj.person.email))

    @admin.display(description="name", ordering="person__full_name")
    def person_name(self, obj):
        return obj.person.full_name

    @admin.display(description="quota", ordering="quota")
    def quota_display(self, obj):
        return format_quota(obj.quota)

    @admin.display(description="quota use")
    def quota_use(self, obj):
        """Used / limit with a bar, as an app above mail measured it (mail.quota_usage's seam)."""
        return _quota_bar(mailbox_usage([obj.address]).get(obj.address))

    @admin.display(description="aliases and lists")
    def reached_by(self, obj):
        from mail.selectors import mail_overview

        o = mail_overview(obj.person)
        items = [_shown(a.address) for a in o["aliases"]] + [_shown(g.list_address) for g in o["lists"]]
        return format_html_join(", ", "{}", ((i,) for i in items)) or "-"

    def remove(self, request, obj):
        services.mailbox_remove(mailbox=obj, request=request)

    def _set_state(self, request, queryset, state, text, already):
        allowed, refused = [], []
        for mailbox in queryset.select_related("person"):
            (allowed if may_manage_person(request.user, mailbox.person) else refused).append(mailbox)
        if refused:
            self.message_user(
                request,
                "Skipped, you may not manage their sign-in: " + ", ".join(m.address for m in refused),
                messages.ERROR,
            )
        changed = sum(services.mailbox_set_state(mailbox=m, state=state, request=request)[1] for m in allowed)
        # Success only for a change made: a refusal stands alone, never beside a green "0 suspended".
        if changed:
            self.message_user(request, f"{changed} mailbox(es) {text}.", messages.SUCCESS)
        elif allowed:
            self.message_user(
                request, f"Nothing changed: the selected mailbox(es) were already {already}.", messages.INFO
            )

    @admin.action(description="Suspend (no sign-in, mail still delivered)", permissions=["change"])
    def suspend(self, request, queryset):
        self._set_state(request, queryset, Mailbox.SUSPENDED, "suspended", "suspended")

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request, queryset):
        self._set_state(request, queryset, Mailbox.ACTIVE, "resumed", "active")

    @admin.action(description="Disable (no sign-in, no delivery, mail kept)", permissions=["change"])
    def disable(self, request, queryset):
        self._set_state(request, queryset, Mailbox.DISABLED, "disabled; their stored mail is kept", "disabled")

    @admin.action(description="Send password-reset link", permissions=["change"])
    def send_reset_link(self, request, queryset):
        sent, skipped = 0, []
        for mailbox in queryset.select_related("person"):
            if not mailbox.is_usable:
                # The reset form ignores suspended and disabled mailboxes: say so rather than pretend.
                skipped.append(mailbox.address)
                continue
            password_reset_mail_queue(mailbox.person.email, by_administrator=True)
            audit(
                "password.reset_sent",
                request=request,
                target=mailbox.person,
                description="Administrator sent a reset link.",
            )
            sent += 1
        if sent:
            self.message_user(request, f"Sent reset links to {sent} person(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"No link sent to {', '.join(skipped)}: resume the mailbox first.", messages.WARNING
            )


@admin.register(Alias)
class AliasAdmin(ServiceAdmin):
    form = forms.AliasForm
    list_display = ["address_display", "targets_display", "keep_copy", "is_active", "domain_display"]
    list_filter = ["is_active", "keep_copy", ("domain", DomainListFilter)]
    search_fields = ["address", "targets__address", "description"]

    def get_fields(self, request, obj=None):
        address = ["address_display"] if obj else [("local_part", "domain")]
        return [*address, "targets_text", "keep_copy", "is_active", "description"]

    def get_readonly_fields(self, request, obj=None):
        return ["address_display"] if obj else []

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("domain").prefetch_related("targets").distinct()

    @admin.display(description="address", ordering="address")
    def address_display(self, obj):
        return _shown(obj.address)

    @admin.display(description="domain", ordering="domain__name")
    def domain_display(self, obj):
        return _shown(obj.domain.name)

    @admin.display(description="targets")
    def targets_display(self, obj):
        return ", ".join(_shown(t) for t in obj.target_list)

    def remove(self, request, obj):
        services.alias_remove(alias=obj, request=request)


@admin.register(Group)
class GroupAdmin(ServiceAdmin):
    form = forms.GroupForm
    list_display = ["name", "list_address_display", "member_count", "description"]
    search_fields = ["name", "list_address", "members__email"]
    filter_horizontal = ["members"]
    fields = ["name", "description", ("list_local_part", "list_domain"), "members"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("members")).distinct()

    @admin.display(description="list address", ordering="list_address")
    def list_address_display(self, obj):
        return _shown(obj.list_address) or "-"

    @admin.display(description="members", ordering="member_count")
    def member_count(self, obj):
        return obj.member_count

    def save_related(self, request, form, formsets, change):
        pass  # members were set by the service

    def remove(self, request, obj):
        services.group_remove(group=obj, request=request)


@admin.register(DkimKey)
class DkimKeyAdmin(admin.ModelAdmin):
    list_display = ["__str__", "domain_display", "state", "algorithm", "key_size", "created_at"]
    list_filter = ["state", "algorithm"]
    list_select_related = ["domain"]
    search_fields = ["domain__name", "selector"]
    readonly_fields = [
        "domain_display",
        "selector",
        "algorithm",
        "key_size",
        "state",
        "created_at",
        "retired_at",
        "dns_record",
    ]
    fields = readonly_fields
    actions = ["retire", "retire_anyway"]

    key_size = admin.display(description="bits", ordering="bits")(lambda self, obj: _key_size(obj))
    domain_display = admin.display(description="domain", ordering="domain__name")(
        lambda self, obj: _shown(obj.domain.name)
    )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Keys change only through generate, rotate and retire, which keep the DNS record and the
        # signing key in step; deleting the active key would silently stop signing.
        return False

    @admin.display(description="DNS TXT record")
    def dns_record(self, obj):
        return format_html(
            "<code class='break-anywhere'>{}</code>", dns_record_value(obj.algorithm, obj.public_key_b64)
        )

    @admin.action(description="Retire (stop publishing; remove the DNS record)", permissions=["change"])
    def retire(self, request, queryset):
        self._retire(request, queryset, force=False)

    @admin.action(
        description="Retire anyway (you checked that the new key is in DNS; Dockspace could not)",
        permissions=["change"],
    )
    def retire_anyway(self, request, queryset):
        self._retire(request, queryset, force=True)

    def _retire(self, request, queryset, force):
        for key in queryset:
            try:
                services.dkim_retire(key=key, request=request, force=force)
            except ValidationError as e:
                self.message_user(request, f"{key}: {error_summary(e)}", messages.ERROR)
            else:
                self.message_user(request, f"Retired {key}; remove its TXT record from DNS.", messages.SUCCESS)


@admin.register(DmsSyncState)
class DmsSyncStateAdmin(admin.ModelAdmin):
    list_display = ["__str__", "last_success_at", "last_error_short", "drift_found_at", "restart_needed", "warnings"]
    readonly_fields = [
        "warnings",
        "dms_dir",
        "last_success_at",
        "last_attempt_at",
        "last_error",
        "skipped",
        "file_checksums",
        "last_changed",
        "write_count",
        "drift_found_at",
        "drift_report",
        "restart_needed",
        "restart_reason",
    ]
    fields = readonly_fields
    actions = ["write_now", "scan_now", "restart_done"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        DmsSyncState.load()
        if not sync.mailbox_exists():
            self.message_user(
                request,
                "No mailbox exists: DMS stops itself about 120 seconds after start without one. Create a mailbox.",
                messages.WARNING,
            )
        state = DmsSyncState.load()
        if state.restart_needed:
            self.message_user(request, f"Restart needed: {state.restart_reason}", messages.WARNING)
        return super().changelist_view(request, extra_context)

    @admin.display(description="last error")
    def last_error_short(self, obj):
        return obj.last_error[:80] or "-"

    @admin.display(description="DMS directory")
    def dms_dir(self, obj):
        from django.conf import settings

        return str(settings.DMS_DIR)

    @admin.display(description="warnings")
    def warnings(self, obj):
        notes = []
        if not sync.mailbox_exists():
            notes.append("No mailbox: DMS stops about 120 s after start without one.")
        if obj.restart_needed:
            notes.append("Restart needed: " + obj.restart_reason)
        if obj.last_error:
            notes.append("Last sync failed; it is retried.")
        if obj.skipped:
            notes.append("Some values cannot be written and were left out (see 'skipped'); everything else was.")
        if obj.drift_report:
            notes.append("Drift was found in the files on disk.")
        return " ".join(notes) or "-"

    @admin.display(description="checksums (sha256)")
    def file_checksums(self, obj):
        return (
            format_html_join("", "<div><code>{}</code> {}</div>", sorted((v[:16], k) for k, v in obj.checksums.items()))
            or "-"
        )

    @admin.action(description="Write the DMS files now", permissions=["change"])
    def write_now(self, request, queryset):
        try:
            report = sync.dms_sync()
        except Exception as e:
            self.message_user(request, f"Could not write the DMS files: {e}", messages.ERROR)
            return
        audit("mail.dms.sync", request=request, description=f"Wrote {len(report.changed)} DMS file(s) by hand.")
        self.message_user(
            request, f"{len(report.changed)} file(s) written, {len(report.unchanged)} unchanged.", messages.SUCCESS
        )
        for skipped in report.skipped:
            self.message_user(request, f"Left out, cannot be written: {skipped}", messages.WARNING)

    @admin.action(description="Scan for drift and repair it", permissions=["change"])
    def scan_now(self, request, queryset):
        try:
            drift = sync.dms_scan(repair=True)
        except Exception as e:
            self.message_user(request, f"Could not scan the DMS files: {e}", messages.ERROR)
            return
        audit("mail.dms.scan", request=request, description=f"Drift repaired in {len(drift)} file(s).")
        self.message_user(
            request, f"Drift repaired in {len(drift)} file(s)." if drift else "No drift.", messages.SUCCESS
        )

    @admin.action(description="I recreated the mailserver container (clear 'restart needed')", permissions=["change"])
    def restart_done(self, request, queryset):
        try:
            services.dms_restart_done(request=request)
        except ValidationError as e:
            self.message_user(request, error_summary(e), messages.ERROR)
            return
        self.message_user(request, "'Restart needed' cleared.", messages.SUCCESS)
