"""Mail hosts in the admin (monitoring/admin.py imports this): added in two steps (the host key it offers, then an
explicit "trust"), re-pinned the same way when its host key changed, changed through the service form, and acted on
(recreate, restart, reload, bootstrap) by a dry run first that shows the exact command, then a confirmed POST: the same
services as `manage.py mailhost`."""

import secrets

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from dockspace.admin_base import ReadOnlyAdmin, ServiceAdmin
from dockspace.forms import ServiceForm
from dockspace.validation import add_to_form, error_summary
from monitoring import hosts, probing
from monitoring.models import HostProbe, MailboxQuotaUsage, MailHost


class MailHostAddForm(forms.Form):
    """Step one of adding a host: where it is and how to reach it (nothing is stored yet)."""

    name = forms.CharField(max_length=63, help_text=MailHost._meta.get_field("name").help_text)
    ssh = forms.CharField(
        label="SSH target", max_length=300, help_text="USER@HOST or USER@HOST:PORT, e.g. deploy@mx1.example.com."
    )
    key_path = forms.CharField(
        label="Private key file", required=False, help_text=MailHost._meta.get_field("key_path").help_text
    )
    key_env = forms.CharField(
        label="Private key variable", required=False, help_text=MailHost._meta.get_field("key_env").help_text
    )
    use_sudo = forms.BooleanField(
        label="Run docker with sudo -n", required=False, help_text=MailHost._meta.get_field("use_sudo").help_text
    )
    container = forms.CharField(initial="mailserver", help_text=MailHost._meta.get_field("container").help_text)
    compose_dir = forms.CharField(
        label="Compose directory", required=False, help_text=MailHost._meta.get_field("compose_dir").help_text
    )
    mail_volume = forms.CharField(initial="/", help_text=MailHost._meta.get_field("mail_volume").help_text)
    mail_hostname = forms.CharField(
        label="Mail host name", required=False, help_text=MailHost._meta.get_field("mail_hostname").help_text
    )
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, text in hosts.key_help().items():  # names the key directory this Dockspace reads
            self.fields[name].help_text = text

    def service_arguments(self):
        data = self.cleaned_data
        return {
            "name": data["name"],
            "ssh_target": data["ssh"],
            "key_path": data["key_path"],
            "key_env": data["key_env"],
            "use_sudo": data["use_sudo"],
            "container": data["container"],
            "compose_dir": data["compose_dir"],
            "mail_volume": data["mail_volume"],
            "mail_hostname": data["mail_hostname"],
            "notes": data["notes"],
        }


# --- a host key shown, then trusted -----------------------------------------------------------------------------
# The fingerprint the operator was shown stays in the session under a one-time token; the confirming POST carries
# only that token (a hidden field) and the answer, so the key trusted is the one shown, never one the browser sends.


def offer_keep(request, session_key, fingerprint, **data):
    """Keep the offered `fingerprint` (and `data`) until the operator answers; the token for the hidden field."""
    token = secrets.token_urlsafe(16)
    request.session[session_key] = {"token": token, "fingerprint": fingerprint, **data}
    return token


def offer_answered(request, session_key):
    """The kept offer this POST answers, removed (each is answered once); None when it expired or was answered."""
    pending = request.session.pop(session_key, None)
    if not pending or not constant_time_compare(pending["token"], request.POST.get("confirmation", "")):
        return None
    return pending


def is_trusted(request):
    return request.POST.get("trust") == "yes"


class MailHostChangeForm(ServiceForm):
    class Meta:
        model = MailHost
        fields = list(hosts.EDITABLE)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, text in hosts.key_help().items():
            if name in self.fields:
                self.fields[name].help_text = text

    def apply(self, data):
        return hosts.mailhost_update(
            host=self.instance, request=self.request, **{key: data[key] for key in hosts.EDITABLE}
        )


@admin.register(MailHost)
class MailHostAdmin(ServiceAdmin):
    form = MailHostChangeForm
    change_form_template = "admin/monitoring/mailhost/change_form.html"
    list_display = ["name", "ssh_target", "container", "status", "is_default", "restart_needed", "host_key_fingerprint"]
    search_fields = ["name", "ssh_host", "notes"]
    ordering = ["name"]
    actions = ["make_default"]
    readonly_fields = [
        "status",
        "name",
        "ssh_target",
        "host_key_type",
        "host_key_fingerprint",
        "is_default",
        "restart_needed",
        "restart_reason",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "ssh_target", "status", "is_default", "notes"]}),
        (
            "Pinned host key (trusted when the host was added or re-pinned)",
            {"fields": ["host_key_type", "host_key_fingerprint"]},
        ),
        ("Private key (never stored here)", {"fields": ["key_path", "key_env", "use_sudo"]}),
        (
            "DMS on the host",
            {
                "fields": [
                    "container",
                    "compose_dir",
                    "mail_volume",
                    "mail_hostname",
                    "restart_needed",
                    "restart_reason",
                ]
            },
        ),
        ("Dates", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="SSH target")
    def ssh_target(self, obj):
        return obj.ssh_target

    @admin.display(description="last probe")
    def status(self, obj):
        probe = probing.latest_probe(obj)
        if probe is None:
            return "not probed yet"
        when = timezone.localtime(probe.started_at).strftime("%Y-%m-%d %H:%M")
        reasons = f": {'; '.join(probe.reasons)}" if probe.reasons else ""
        return f"{probe.status} ({when}){reasons}"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            "can_operate": request.user.has_perm(hosts.OPERATE),
            "can_repin": request.user.has_perm(hosts.CHANGE),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def remove(self, request, obj):
        hosts.mailhost_remove(host=obj, request=request)

    @admin.action(description="Make the selected host the default", permissions=["change"])
    def make_default(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one host to make it the default.", messages.ERROR)
            return
        host = hosts.mailhost_set_default(host=queryset.get(), request=request)
        self.message_user(request, f"{host.name} is the default mail host.", messages.SUCCESS)

    # --- adding: the offered host key, then trust ---

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        pending_key = "monitoring_mailhost_add"
        if request.method == "POST" and "confirmation" in request.POST:
            pending = offer_answered(request, pending_key)
            if pending is None:
                self.message_user(request, "That form expired; contact the host again.", messages.WARNING)
                return HttpResponseRedirect(request.path)
            form = MailHostAddForm(pending["data"])
            form.is_valid()
            if not is_trusted(request):
                return self._add_page(request, form)
            try:
                added = hosts.mailhost_add(**form.service_arguments(), trust=pending["fingerprint"], request=request)
            except ValidationError as e:
                add_to_form(form, e, {"ssh_target": "ssh"})
                return self._add_page(request, form)
            self.message_user(
                request,
                f"Added {added.host.name} with host key {added.offered.fingerprint} pinned.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:monitoring_mailhost_change", args=[added.host.pk]))
        form = MailHostAddForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                added = hosts.mailhost_add(**form.service_arguments(), trust=None, request=request)
            except ValidationError as e:
                add_to_form(form, e, {"ssh_target": "ssh"})
            else:
                token = offer_keep(request, pending_key, added.offered.fingerprint, data=form.cleaned_data)
                return self._trust_page(
                    request,
                    title=f"Trust the host key of {form.cleaned_data['ssh']}?",
                    ssh=form.cleaned_data["ssh"],
                    offered=added.offered,
                    confirmation=token,
                    trust_label="Yes, I checked it: trust this key and add the host",
                )
        return self._add_page(request, form)

    def _trust_page(self, request, **context):
        """The offered host key, and the question whether to trust it (with `pinned`: beside the pinned one)."""
        context = {**self.admin_site.each_context(request), "opts": self.opts, **context}
        return TemplateResponse(request, "admin/monitoring/mailhost/trust.html", context)

    def _add_page(self, request, form):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Add mail host",
            "form": form,
        }
        return TemplateResponse(request, "admin/monitoring/mailhost/add.html", context)

    # --- actions on a host: dry run first, then a confirmed POST ---

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/recreate/", view(self.recreate_view), name="monitoring_mailhost_recreate"),
            path("<path:object_id>/restart/", view(self.restart_view), name="monitoring_mailhost_restart"),
            path("<path:object_id>/reload/<str:service>/", view(self.reload_view), name="monitoring_mailhost_reload"),
            path("<path:object_id>/bootstrap/", view(self.bootstrap_view), name="monitoring_mailhost_bootstrap"),
            path("<path:object_id>/check/", view(self.check_view), name="monitoring_mailhost_check"),
            path("<path:object_id>/repin/", view(self.repin_view), name="monitoring_mailhost_repin"),
        ] + super().get_urls()

    def _host(self, request, object_id):
        host = self.get_object(request, unquote(object_id))
        if host is None:
            raise Http404("No such mail host.")
        if not self.has_view_permission(request, host):
            raise PermissionDenied
        return host

    def _change_url(self, host):
        return reverse("admin:monitoring_mailhost_change", args=[host.pk])

    def _action_page(self, request, host, title, done, template="admin/monitoring/mailhost/action.html", **more):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "original": host,
            "change_url": self._change_url(host),
            "done": done,
            **more,
        }
        return TemplateResponse(request, template, context)

    def _run(self, request, host, call):
        """The service call, or its refusal as a message on the host's page."""
        try:
            return call(execute=request.method == "POST"), None
        except ValidationError as e:
            self.message_user(request, f"{host.name}: {error_summary(e)}", messages.ERROR)
            return None, HttpResponseRedirect(self._change_url(host))

    def restart_view(self, request, object_id):
        host = self._host(request, object_id)
        done, refused = self._run(
            request, host, lambda execute: hosts.mailhost_restart(host=host, execute=execute, request=request)
        )
        note = (
            "A restart keeps the same container: DMS skips its set-up, so changed OpenDKIM keys, postfix-main.cf and "
            "user-patches.sh are not applied and “restart needed” stays. Use “Recreate container” for those."
        )
        return refused or self._action_page(request, host, f"Restart the DMS container on {host.name}", done, note=note)

    def recreate_view(self, request, object_id):
        """GET contacts nothing (a link from another site cannot start anything): it shows the read-only look-up.
        POST "look_up" reads the container's compose labels and shows the exact command; a POST without it runs it."""
        host = self._host(request, object_id)
        execute = request.method == "POST" and "look_up" not in request.POST
        try:
            done = hosts.mailhost_recreate(
                host=host, execute=execute, look_up=request.method == "POST", request=request
            )
        except ValidationError as e:
            self.message_user(request, f"{host.name}: {error_summary(e)}", messages.ERROR)
            return HttpResponseRedirect(self._change_url(host))
        return self._action_page(
            request,
            host,
            f"Recreate the DMS container on {host.name}",
            done,
            template="admin/monitoring/mailhost/recreate.html",
        )

    def reload_view(self, request, object_id, service):
        host = self._host(request, object_id)
        done, refused = self._run(
            request,
            host,
            lambda execute: hosts.mailhost_reload(host=host, service=service, execute=execute, request=request),
        )
        return refused or self._action_page(request, host, f"Reload {service} on {host.name}", done)

    def bootstrap_view(self, request, object_id):
        """GET shows a button: even the read-only checks connect to the host, so they run on a POST (a link from
        another site cannot start them). POST "check" runs them; POST without it applies the safe fixes."""
        host = self._host(request, object_id)
        title, template = f"Bootstrap check of {host.name}", "admin/monitoring/mailhost/bootstrap.html"
        if request.method != "POST":
            return self._action_page(request, host, title, None, template=template, has_safe_fix=False)
        execute = "check" not in request.POST
        try:
            report = hosts.mailhost_bootstrap(host=host, execute=execute, request=request)
        except ValidationError as e:
            self.message_user(request, f"{host.name}: {error_summary(e)}", messages.ERROR)
            return HttpResponseRedirect(self._change_url(host))
        return self._action_page(
            request,
            host,
            title,
            report,
            template=template,
            has_safe_fix=any(not f.ok and f.is_safe_fix for f in report.findings),
            executed=execute,
        )

    def check_view(self, request, object_id):
        """The last probe; POST probes the host now (read-only on the host; stores a probe row)."""
        host = self._host(request, object_id)
        probe = probing.latest_probe(host)
        if request.method == "POST":
            try:
                probe = probing.mailhost_check(host=host, request=request)
            except ValidationError as e:
                self.message_user(request, f"{host.name}: {error_summary(e)}", messages.ERROR)
                return HttpResponseRedirect(self._change_url(host))
        return self._action_page(
            request,
            host,
            f"Check of {host.name}",
            probe,
            template="admin/monitoring/mailhost/check.html",
            data=probing.probe_data(probe) if probe else None,
        )

    def repin_view(self, request, object_id):
        """The host key changed on purpose (reinstalled, keys rotated): GET shows the pinned key and connects to
        nothing; POST "fetch" shows the key the host offers now beside it (nothing stored); the confirming POST pins
        the key shown, if the host still offers it (mailhost_repin checks the permission, compares and audits)."""
        host = self._host(request, object_id)
        pending_key = f"monitoring_mailhost_repin:{host.pk}"
        title = f"Re-pin the host key of {host.name}"

        def page(**more):
            return self._action_page(
                request, host, title, None, template="admin/monitoring/mailhost/repin.html", **more
            )

        if request.method != "POST":
            return page()
        if "confirmation" in request.POST:
            pending = offer_answered(request, pending_key)
            if pending is None:
                return page(refusal="That confirmation expired or was already answered: fetch the host's key again.")
            if not is_trusted(request):
                return page()
            try:
                pinned = hosts.mailhost_repin(host=host, trust=pending["fingerprint"], request=request)
            except ValidationError as e:
                return page(refusal=error_summary(e))
            self.message_user(request, f"{host.name}: host key {pinned.fingerprint} pinned.", messages.SUCCESS)
            return HttpResponseRedirect(self._change_url(host))
        try:
            offered = hosts.mailhost_repin(host=host, trust=None, request=request)
        except ValidationError as e:
            return page(refusal=error_summary(e))
        unneeded = hosts.repin_unneeded(host, offered)
        if unneeded:
            return page(unchanged=unneeded)
        return self._trust_page(
            request,
            title=title,
            original=host,
            change_url=self._change_url(host),
            ssh=host.ssh_target,
            offered=offered,
            pinned=host,
            confirmation=offer_keep(request, pending_key, offered.fingerprint),
            trust_label="Yes, I checked it: pin this key instead",
        )


# Probe results are kept 7 days, then as hourly rollups (monitoring.probing); quota usage as Dovecot last reported.
@admin.register(HostProbe)
class HostProbeAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "host", "status", "reasons_text", "queue_count", "disk_percent", "load1"]
    list_filter = ["status", "host"]
    date_hierarchy = "started_at"
    list_select_related = ["host"]

    @admin.display(description="reasons")
    def reasons_text(self, obj):
        return "; ".join(obj.reasons) or "-"


@admin.register(MailboxQuotaUsage)
class MailboxQuotaUsageAdmin(ReadOnlyAdmin):
    list_display = ["address", "host", "used", "limit", "percent", "measured_at"]
    list_filter = ["host"]
    search_fields = ["address"]
    ordering = ["-used_bytes"]

    @admin.display(description="used", ordering="used_bytes")
    def used(self, obj):
        return _size(obj.used_bytes)

    @admin.display(description="limit", ordering="limit_bytes")
    def limit(self, obj):
        return "no limit" if obj.limit_bytes is None else _size(obj.limit_bytes)


def _size(value):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
