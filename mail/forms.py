"""Admin and page forms for mail. They call the services; they never write rows themselves."""

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import get_default_password_validators
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join

from accounts.mail_hashes import MailPasswordValidator
from dockspace.canonical import unicode_address
from dockspace.forms import ServiceForm
from mail import dkim, services
from mail.addresses import plus_warning
from mail.models import Alias, Domain, Group, Mailbox, Tier
from mail.quota import format_quota, parse_quota

User = get_user_model()


class QuotaField(forms.CharField):
    """Quota in DMS syntax (2G, 500M, 100k, 0 for no limit) shown and read as text, stored as bytes."""

    MAX_LENGTH = 20

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("help_text", "A whole number with B, k, M, G or T (binary units), e.g. 2G; 0 = no limit.")
        super().__init__(*args, **kwargs)
        # Not max_length: its validator would measure the parsed value, a number of bytes.
        self.widget.attrs.setdefault("maxlength", str(self.MAX_LENGTH))

    def prepare_value(self, value):
        return format_quota(value) if isinstance(value, int) else value

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        if len(value) > self.MAX_LENGTH:
            raise ValidationError(f"at most {self.MAX_LENGTH} characters, like 10G.")
        try:
            return parse_quota(value, "quota")
        except ValidationError as e:
            raise ValidationError(e.messages) from None


class DomainChoiceField(forms.ModelChoiceField):
    """The managed domains, international ones shown in their own letters with the punycode beside."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "Only domains Dockspace manages; add a domain first to use another.")
        super().__init__(queryset=Domain.objects.order_by("name"), **kwargs)

    def label_from_instance(self, domain):
        return unicode_address(domain.name, with_ascii=True)


class AddressPicker:
    """A part before '@' and a managed-domain picker instead of a free-text address. clean() puts the
    composed 'local@domain' (or '@domain' where the local part may be empty) into cleaned_data["address"],
    which the service validates in full; an address with '+' is saved with a warning."""

    local_field = "local_part"
    domain_field = "domain"

    def clean(self):
        local = (self.cleaned_data.get(self.local_field) or "").strip()
        domain = self.cleaned_data.get(self.domain_field)
        address = f"{local}@{domain.name}" if domain is not None else None
        if domain is None and local and self.domain_field not in self.errors:
            self.add_error(self.domain_field, "pick the domain of the address.")
        self.cleaned_data["address"] = address
        data = super().clean()
        warning = plus_warning(address) if address and not self.errors else None
        if warning and self.request is not None:
            messages.warning(self.request, warning)
        return data


def _operator_password_help():
    # The operator sets someone else's password here: the validators' own wording ("Once you have a
    # mailbox, your password also signs you in to mail") is written for the person themselves.
    texts = [v.get_help_text() for v in get_default_password_validators() if not isinstance(v, MailPasswordValidator)]
    return format_html(
        "Optional: leave empty and send a reset link instead. This one password signs the person in to "
        "Dockspace and to mail.<ul>{}</ul>",
        format_html_join("", "<li>{}</li>", ((t,) for t in texts)),
    )


class TierForm(forms.ModelForm):
    max_quota_per_mailbox = QuotaField(required=False)
    total_quota = QuotaField(required=False)
    default_quota = QuotaField(required=False)

    class Meta:
        model = Tier
        fields = [
            "name",
            "description",
            "max_mailboxes",
            "max_aliases",
            "max_quota_per_mailbox",
            "total_quota",
            "default_quota",
            "daily_send_limit",
            "daily_domain_send_limit",
            "max_recipients_per_message",
        ]


class DomainForm(ServiceForm):
    default_quota = QuotaField(required=False)

    class Meta:
        model = Domain
        fields = ["name", "is_active", "tier", "default_quota", "dkim_selector", "dkim_algorithm", "dkim_bits"]

    def _post_clean(self):
        # The service normalises the name (upper case, IDNA) before uniqueness is checked.
        pass

    def clean_dkim_selector(self):
        # Checked here as well as when a key is made: a bad selector would otherwise only show up
        # later, as a failed "Generate a DKIM key" action.
        try:
            return dkim.validate_selector(self.cleaned_data["dkim_selector"].lower())
        except ValidationError as e:
            raise ValidationError(e.messages) from None

    def clean(self):
        algorithm, bits = self.cleaned_data.get("dkim_algorithm"), self.cleaned_data.get("dkim_bits")
        if algorithm == Domain.DKIM_RSA and bits is not None and bits not in dkim.RSA_BITS:
            self.add_error("dkim_bits", f"an RSA DKIM key has {', '.join(map(str, dkim.RSA_BITS))} bits.")
        return super().clean()

    def apply(self, data):
        if self.instance.pk is None:
            domain = services.domain_create(
                name=data["name"],
                tier=data["tier"],
                default_quota=data["default_quota"],
                is_active=data["is_active"],
                **self._who(),
            )
            # Only DKIM settings that differ from the defaults need a second step (and audit event).
            changes = {
                k: data[k] for k in ("dkim_selector", "dkim_algorithm", "dkim_bits") if data[k] != getattr(domain, k)
            }
            return services.domain_update(domain=domain, **changes, **self._who()) if changes else domain
        changes = {k: data[k] for k in self.changed_data if k != "name"}
        if changes:
            return services.domain_update(domain=self.instance, **changes, **self._who())
        return self.instance


class MailboxAddForm(AddressPicker, ServiceForm):
    local_part = forms.CharField(label="Address", max_length=64, help_text="The part before '@'.")
    domain = DomainChoiceField(label="@ domain")
    full_name = forms.CharField(max_length=150, required=False)
    quota = QuotaField(required=False, help_text="Empty: the domain's default. 2G, 500M, 0 = no limit.")
    password1 = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_operator_password_help(),
    )
    password2 = forms.CharField(label="Password again", required=False, strip=False, widget=forms.PasswordInput)
    person = forms.CharField(
        label="Existing person",
        max_length=254,
        required=False,
        help_text="Optional: the sign-in address of an existing person who gets this mailbox (needs the "
        "permission to change people). Empty: a new person signing in with the mailbox address. A password "
        "given for an existing person replaces their password (Dockspace and mail) and signs them out "
        "elsewhere; leave the password empty to keep theirs.",
    )

    service_fields = {"password": "password1", "address": "local_part"}

    class Meta:
        model = Mailbox
        fields = []

    def _post_clean(self):
        pass

    def apply(self, data):
        if data.get("password1") != data.get("password2"):
            raise ValidationError({"password2": ["the two passwords differ."]})
        person = None
        if data.get("person"):
            from accounts.models import normalize_email

            person = User.objects.filter(email=normalize_email(data["person"])).first()
            if person is None:
                raise ValidationError({"person": [f"no person signs in as {data['person']}."]})
        mailbox = services.mailbox_create(
            address=data["address"],
            full_name=data.get("full_name", ""),
            quota=data.get("quota"),
            password=data.get("password1") or None,
            person=person,
            **self._who(),
        )
        if person is not None and data.get("password1") and self.request is not None:
            self._password_replaced(mailbox.person)
        return mailbox

    def _password_replaced(self, person):
        """Their old password is gone: so are their other sessions. An operator adopting themselves stays
        signed in here."""
        from django.contrib.auth import update_session_auth_hash

        from accounts.models import hash_session_key
        from accounts.services import sessions_revoke_all

        is_self = self.request.user.pk == person.pk
        current = self.request.session.session_key
        sessions_revoke_all(
            user=person, keep_hash=hash_session_key(current) if is_self and current else None, **self._who()
        )
        if is_self:
            update_session_auth_hash(self.request, person)
            messages.warning(
                self.request,
                "Your password was replaced (Dockspace and mail) by the one given here; your other sessions were "
                "signed out, this one stays.",
            )
        else:
            messages.warning(
                self.request,
                f"The password of {person.email} was replaced (Dockspace and mail) by the one given here; their "
                "sessions were signed out.",
            )


class MailboxChangeForm(ServiceForm):
    full_name = forms.CharField(max_length=150, required=False)
    quota = QuotaField(required=True)
    new_password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput,
        help_text="Optional: sets the one password for mail and Dockspace and signs the person out elsewhere.",
    )

    service_fields = {"password": "new_password"}

    class Meta:
        model = Mailbox
        fields = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial.setdefault("full_name", self.instance.person.full_name)
            self.initial.setdefault("quota", self.instance.quota)

    def _post_clean(self):
        pass

    def apply(self, data):
        changed = set(self.changed_data)
        mailbox = services.mailbox_update(
            mailbox=self.instance,
            quota=data["quota"] if "quota" in changed else None,
            full_name=data["full_name"] if "full_name" in changed else None,
            password=data.get("new_password") or None,
            **self._who(),
        )
        if data.get("new_password"):
            from accounts.services import sessions_revoke_all

            sessions_revoke_all(user=mailbox.person, **self._who())
        return mailbox


def _split_targets(text):
    return [t for t in (part.strip() for chunk in (text or "").splitlines() for part in chunk.split(",")) if t]


class AliasForm(AddressPicker, ServiceForm):
    local_part = forms.CharField(
        label="Address",
        max_length=64,
        required=False,
        help_text="The part before '@'; leave it empty for a catch-all of the domain.",
    )
    domain = DomainChoiceField(label="@ domain")
    targets_text = forms.CharField(
        label="Targets",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One address per line: mailboxes, aliases or lists here, or outside addresses.",
    )

    service_fields = {"targets": "targets_text", "address": "local_part"}

    class Meta:
        model = Alias
        fields = ["keep_copy", "is_active", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # The address of an alias never changes (the admin shows it read-only).
            del self.fields["local_part"], self.fields["domain"]
            self.fields["keep_copy"].disabled = True
            self.initial["targets_text"] = "\n".join(self.instance.target_list)

    def clean(self):
        if self.instance.pk:
            return ServiceForm.clean(self)
        return super().clean()

    def _post_clean(self):
        pass

    def apply(self, data):
        targets = _split_targets(data["targets_text"])
        if self.instance.pk is None:
            return services.alias_create(
                address=data["address"],
                targets=targets,
                keep_copy=data.get("keep_copy", False),
                description=data.get("description", ""),
                is_active=data.get("is_active", True),
                **self._who(),
            )
        return services.alias_update(
            alias=self.instance,
            targets=targets,
            is_active=data.get("is_active"),
            description=data.get("description"),
            **self._who(),
        )


class GroupForm(AddressPicker, ServiceForm):
    list_local_part = forms.CharField(
        label="List address",
        max_length=64,
        required=False,
        help_text="Optional: the part before '@' of an address that makes the group a mailing list.",
    )
    list_domain = DomainChoiceField(label="@ domain", required=False)

    local_field = "list_local_part"
    domain_field = "list_domain"
    service_fields = {"address": "list_local_part"}

    class Meta:
        model = Group
        fields = ["name", "description", "members"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "members" in self.fields:
            self.fields["members"].label_from_instance = lambda person: unicode_address(person.email, with_ascii=True)
        if self.instance.pk:
            self.initial["list_local_part"] = self.instance.list_local_part
            self.initial["list_domain"] = self.instance.list_domain_id

    def clean(self):
        local = (self.cleaned_data.get("list_local_part") or "").strip()
        if self.cleaned_data.get("list_domain") is not None and not local:
            self.add_error("list_local_part", "give the part before '@', or clear the domain for no list address.")
        return super().clean()

    def _post_clean(self):
        pass

    def apply(self, data):
        members = [p.email for p in data.get("members") or []]
        if self.instance.pk is None:
            return services.group_create(
                name=data["name"],
                address=data.get("address") or None,
                members=members,
                description=data.get("description", ""),
                **self._who(),
            )
        return services.group_update(
            group=self.instance,
            name=data["name"],
            address=data.get("address") or None,
            description=data.get("description", ""),
            members=members,
            **self._who(),
        )
