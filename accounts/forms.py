"""Forms for the sign-in and self-service pages. Each error names the field and the rule."""

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import PasswordChangeForm as DjangoPasswordChangeForm
from django.contrib.auth.forms import PasswordResetForm as DjangoPasswordResetForm

from accounts.models import EMAIL_MAX_LENGTH, User, normalize_email, validate_full_name


class EmailField(forms.EmailField):
    default_error_messages = {
        "invalid": "Enter a valid email address, like name@example.com.",
        "required": "Enter your email address.",
        "max_length": f"An email address has at most {EMAIL_MAX_LENGTH} characters.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", EMAIL_MAX_LENGTH)
        kwargs.setdefault("widget", forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))
        super().__init__(**kwargs)

    def to_python(self, value):
        # Validated in the canonical spelling, so that root@example.com. and root@ＥＸＡＭＰＬＥ．ＣＯＭ are taken as
        # the root@example.com they mean rather than refused or stored as another address.
        return normalize_email(super().to_python(value))


class NewAccountForm(forms.Form):
    """First-run administrator and self-registration: email, name and a password typed twice."""

    email = EmailField(label="Email address")
    full_name = forms.CharField(label="Full name", max_length=150, required=False, validators=[validate_full_name])
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean_email(self):
        email = self.cleaned_data["email"]
        if User.objects.filter(email=email).exists():
            raise forms.ValidationError("A person with this email address already exists.")
        return email

    def clean(self):
        data = super().clean()
        p1, p2 = data.get("password1"), data.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", "The two passwords differ.")
        elif p1:
            candidate = User(email=data.get("email") or "", full_name=data.get("full_name") or "")
            try:
                password_validation.validate_password(p1, candidate)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


class RegistrationForm(NewAccountForm):
    """Self-registration: whether the address is taken is never said here (the mail says it)."""

    def clean_email(self):
        return self.cleaned_data["email"]


class SignInForm(forms.Form):
    email = EmailField(label="Email address")
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        error_messages={"required": "Enter your password."},
    )


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
        help_text="The 6-digit code from your authenticator app, or one of your backup codes.",
        error_messages={
            "required": "Enter the code from your authenticator app.",
            "max_length": "A code has at most 20 characters.",
        },
    )


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["full_name"]
        labels = {"full_name": "Full name"}


class DeviceNameForm(forms.Form):
    name = forms.CharField(
        label="Device name",
        max_length=64,
        initial="Authenticator",
        help_text="For telling your devices apart, e.g. 'Phone' or 'Laptop'.",
        error_messages={
            "required": "Give the device a name.",
            "max_length": "A device name has at most 64 characters.",
        },
    )


class ReauthForm(forms.Form):
    """Asks again for the password before a sensitive change."""

    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        error_messages={"required": "Enter your password to confirm."},
    )

    def __init__(self, *args, user, request, **kwargs):
        self.user, self.request = user, request
        super().__init__(*args, **kwargs)

    def clean_password(self):
        password = self.cleaned_data["password"]
        _confirm_password(self.user, password, self.request)
        return password


def _confirm_password(user, password, request):
    from accounts.services import password_confirm

    # Raised from a field's clean_<field>(): the refusal lands on that field, whatever the service calls it.
    try:
        password_confirm(user=user, password=password, request=request)
    except forms.ValidationError as exc:
        raise forms.ValidationError(exc.messages) from None


class PasswordChangeForm(DjangoPasswordChangeForm):
    """Django's form, with the old password checked under the sign-in lockout."""

    def __init__(self, *args, request, **kwargs):
        self.request = request
        super().__init__(*args, **kwargs)

    def clean_old_password(self):
        old = self.cleaned_data["old_password"]
        _confirm_password(self.user, old, self.request)
        return old


class PasswordResetForm(DjangoPasswordResetForm):
    email = EmailField(label="Email address")
