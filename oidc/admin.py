"""Admin for OIDC clients (registered by DOT through APPLICATION_ADMIN_CLASS) and signing keys.

Clients are created, changed, re-keyed and removed through oidc.services, as the commands do. A secret is
shown once, in the response that created it (never through messages, which may sit in a cookie), and
never again: the database only holds its hash.
"""

import secrets

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.html import format_html

from dockspace.admin_base import ServiceAdmin
from dockspace.forms import ServiceForm
from oidc import services
from oidc.models import DEFAULT_SCOPES, Application, SigningKey
from oidc.scopes import SCOPES

DISCOVERY_PATH = "/.well-known/openid-configuration"
GRANT_CHOICES = [
    (Application.GRANT_AUTHORIZATION_CODE, "Authorization code: people sign in to this app"),
    (Application.GRANT_CLIENT_CREDENTIALS, "Client credentials: automation acting for itself, no person"),
]


class GrantListFilter(admin.SimpleListFilter):
    """'By grant' offers the grants Dockspace accepts, not every grant DOT knows (implicit, password, ...)."""

    title = "grant"
    parameter_name = "grant"

    def lookups(self, request, model_admin):
        return [(value, label.split(":")[0]) for value, label in GRANT_CHOICES]

    def queryset(self, request, queryset):
        return queryset.filter(authorization_grant_type=self.value()) if self.value() else queryset


def issuer():
    return settings.OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"].rstrip("/")


def uri_list(text):
    return (text or "").split()


class UriListField(forms.CharField):
    """URIs one per line; unchanged when the same URIs come back with other line endings or spacing."""

    def has_changed(self, initial, data):
        return uri_list(initial) != uri_list(data)


class ClientForm(ServiceForm):
    """Every field an operator sets; saving calls client_create or client_update, whose errors land on the field."""

    authorization_grant_type = forms.ChoiceField(
        label="Grant", choices=GRANT_CHOICES, initial=Application.GRANT_AUTHORIZATION_CODE, widget=forms.RadioSelect
    )
    allowed_scopes = forms.MultipleChoiceField(
        label="Allowed scopes",
        choices=[(scope.name, f"{scope.name}: {scope.description}") for scope in SCOPES],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="What the app may ask for. A client-credentials client uses introspection only.",
    )

    class Meta:
        model = Application
        field_classes = {"redirect_uris": UriListField, "post_logout_redirect_uris": UriListField}
        fields = [
            "name",
            "client_type",
            "authorization_grant_type",
            "redirect_uris",
            "post_logout_redirect_uris",
            "allowed_scopes",
            "requires_pkce",
            "allowed_groups",
            "requires_totp",
            "skip_authorization",
            "is_active",
        ]
        labels = {
            "client_type": "Type",
            "redirect_uris": "Redirect URIs",
            "post_logout_redirect_uris": "Post-logout redirect URIs",
            "allowed_groups": "Only members of",
            "requires_totp": "Requires TOTP",
            "requires_pkce": "Requires PKCE",
            "skip_authorization": "Skip consent",
            "is_active": "Active",
        }
        help_texts = {
            "name": "What people see on the consent page and in their profile, e.g. Grafana.",
            "client_type": "Confidential: a server-side app that keeps a secret. Public: a single-page or native "
            "app that cannot; it has no secret and always uses PKCE.",
            "redirect_uris": "One per line, matched exactly. https:// only (http:// only on 127.0.0.1 or [::1]).",
            "post_logout_redirect_uris": "Where the app may send people after signing them out; one per line.",
            "skip_authorization": "First-party app: do not ask people to allow it.",
        }
        widgets = {
            "redirect_uris": forms.Textarea(attrs={"rows": 3, "cols": 80}),
            "post_logout_redirect_uris": forms.Textarea(attrs={"rows": 2, "cols": 80}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].required = True
        app = self.instance
        self.initial["allowed_scopes"] = (app.allowed_scopes if app.pk else DEFAULT_SCOPES).split()
        for field in ("redirect_uris", "post_logout_redirect_uris"):
            self.initial[field] = "\n".join(uri_list(getattr(app, field)))
        if self.request is not None and not services.may_set_up_guarded_client(self.request.user):
            # The page says up front what oidc.services would refuse (docs/security.md).
            self.fields["allowed_scopes"].help_text += (
                " Only a superuser sets up a client allowed mail or introspection, or changes its redirect URIs, "
                "scopes or consent."
            )

    def _post_clean(self):
        pass  # the service validates the client (Application.clean() and Dockspace's own rules)

    def apply(self, data):
        common = {
            "name": data["name"],
            "redirect_uris": uri_list(data["redirect_uris"]),
            "post_logout_redirect_uris": uri_list(data["post_logout_redirect_uris"]),
            "scopes": data["allowed_scopes"],
            "groups": [group.name for group in data["allowed_groups"]],
            "requires_totp": data["requires_totp"],
            "requires_pkce": data["requires_pkce"],
            "skip_consent": data["skip_authorization"],
            "request": self.request,
        }
        if self.instance.pk is None:
            app, secret = services.client_create(
                public=data["client_type"] == Application.CLIENT_PUBLIC,
                client_credentials=data["authorization_grant_type"] == Application.GRANT_CLIENT_CREDENTIALS,
                **common,
            )
            app.issued_secret = secret  # for the page that answers this request, and nothing else
            return app
        return services.client_update(application=self.instance, is_active=data["is_active"], **common)


class ClientAdmin(ServiceAdmin):
    form = ClientForm
    change_form_template = "admin/oidc/application/change_form.html"
    list_display = (
        "name",
        "client_id",
        "client_type",
        "grant",
        "requires_totp",
        "group_names",
        "skip_authorization",
        "is_active",
    )
    list_filter = (
        "is_active",
        "client_type",
        GrantListFilter,
        "requires_totp",
        "skip_authorization",
        "allowed_groups",
    )
    search_fields = ("name", "client_id", "redirect_uris", "allowed_groups__name")
    filter_horizontal = ("allowed_groups",)
    radio_fields = {"client_type": admin.HORIZONTAL}
    ordering = ("name",)
    view_on_site = False  # DOT's get_absolute_url names a page Dockspace does not serve

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("allowed_groups")

    def get_fieldsets(self, request, obj=None):
        sign_in = ["redirect_uris", "post_logout_redirect_uris", "allowed_scopes", "requires_pkce"]
        access = ["allowed_groups", "requires_totp", "skip_authorization"]
        if obj is None:
            return [
                (None, {"fields": ["name", "client_type", "authorization_grant_type"]}),
                ("Sign-in", {"fields": sign_in}),
                ("Who may sign in", {"fields": access}),
            ]
        return [
            (None, {"fields": ["name", "is_active", "client_id", "secret", "client_type", "authorization_grant_type"]}),
            ("Configure the app with", {"fields": ["connection"]}),
            ("Sign-in", {"fields": sign_in}),
            ("Who may sign in", {"fields": access}),
            ("Dates", {"fields": ["created", "updated"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # Type and grant decide whether a secret exists; changing them means registering a new client.
        return ["client_id", "secret", "client_type", "authorization_grant_type", "connection", "created", "updated"]

    @admin.display(description="grant", ordering="authorization_grant_type")
    def grant(self, obj):
        return "client credentials" if obj.authorization_grant_type == obj.GRANT_CLIENT_CREDENTIALS else "code"

    @admin.display(description="only members of")
    def group_names(self, obj):
        return ", ".join(sorted(group.name for group in obj.allowed_groups.all())) or "everyone"

    @admin.display(description="client secret")
    def secret(self, obj):
        if obj.client_type == Application.CLIENT_PUBLIC:
            return "None: a public client proves itself with PKCE."
        return "Stored hashed; it cannot be shown. “Rotate secret” (top right) issues a new one."

    @admin.display(description="issuer and discovery URL")
    def connection(self, obj):
        return format_html(
            "Issuer <code>{}</code><br>Discovery URL <code>{}</code><br>Client ID <code>{}</code>",
            issuer(),
            issuer() + DISCOVERY_PATH,
            obj.client_id,
        )

    # --- secrets, shown once -------------------------------------------------------------------------

    def secret_response(self, request, issued, title):
        """The page that shows freshly issued secrets; it is the only place they ever appear."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "issued": [
                {
                    "app": app,
                    "secret": secret,
                    "change_url": reverse("admin:oidc_application_change", args=[app.pk]),
                }
                for app, secret in issued
            ],
            "issuer": issuer(),
            "discovery_url": issuer() + DISCOVERY_PATH,
        }
        return TemplateResponse(request, "admin/oidc/application/client_secret.html", context)

    def response_add(self, request, obj, post_url_continue=None):
        return self.secret_response(request, [(obj, getattr(obj, "issued_secret", None))], "OIDC client created")

    def get_urls(self):
        rotate = self.admin_site.admin_view(self.rotate_secret_view)
        return [
            path("<path:object_id>/rotate-secret/", rotate, name="oidc_application_rotate_secret")
        ] + super().get_urls()

    def rotate_secret_view(self, request, object_id):
        app = self.get_object(request, unquote(object_id))
        if app is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, app):
            raise PermissionDenied
        change_url = reverse("admin:oidc_application_change", args=[app.pk])
        pending_key = f"oidc_rotate_secret:{app.pk}"
        if request.method == "POST":
            # One confirmation, one new secret: reloading the page that shows it must not rotate again.
            expected = request.session.pop(pending_key, None)
            if not expected or not constant_time_compare(expected, request.POST.get("confirmation", "")):
                self.message_user(
                    request,
                    "That rotation was already done (its secret is shown only once) or the form expired; "
                    "rotate again if you did not copy the secret.",
                    messages.WARNING,
                )
                return HttpResponseRedirect(change_url)
            try:
                secret = services.client_rotate_secret(application=app, request=request)
            except ValidationError as e:
                self.message_user(request, " ".join(e.messages), messages.ERROR)
                return HttpResponseRedirect(change_url)
            return self.secret_response(request, [(app, secret)], "New client secret")
        request.session[pending_key] = secrets.token_urlsafe(16)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "confirmation": request.session[pending_key],
            "title": f"Rotate the secret of {app}?",
            "original": app,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/oidc/application/rotate_secret.html", context)

    def remove(self, request, obj):
        services.client_remove(application=obj, request=request)


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    """Read-only: keys change only through `manage.py oidc_keys rotate`; the private key is never shown."""

    list_display = ("kid", "state", "is_published", "created_at", "activated_at", "publish_until")
    list_filter = ("state",)
    search_fields = ("kid",)
    ordering = ("-created_at",)
    fields = ("kid", "state", "is_published", "created_at", "activated_at", "publish_until")
    readonly_fields = fields
    exclude = ("private_pem",)

    def get_queryset(self, request):
        return super().get_queryset(request).defer("private_pem")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(boolean=True, description="in JWKS now")
    def is_published(self, obj):
        if obj.state in (SigningKey.ACTIVE, SigningKey.NEXT):
            return True
        return obj.state == SigningKey.RETIRING and obj.publish_until is not None and obj.publish_until > timezone.now()
