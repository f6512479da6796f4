"""Pages: first run, sign in (password, then code), sign out, password reset, profile and security."""

import time
from base64 import b32encode

import segno
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login
from django_otp import match_token, user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from accounts.audit import audit
from accounts.forms import (
    CodeForm,
    DeviceNameForm,
    NewAccountForm,
    PasswordResetForm,
    ProfileForm,
    ReauthForm,
    SignInForm,
)
from accounts.models import AppSettings, BackupCodeDevice, User
from accounts.selectors import sessions_of
from accounts.sessions import record_request_meta
from dockspace.client_ip import client_ip

PENDING_SIGN_IN = "_dockspace_pending_sign_in"
PENDING_SIGN_IN_SECONDS = 300
ENROLLING_DEVICE = "_dockspace_enrolling_device"
BACKEND = "accounts.backends.EmailBackend"


def _next_url(request, default="accounts:profile"):
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(candidate, {request.get_host()}, request.is_secure()):
        return candidate
    return reverse(default)


def _add_service_error(form, exc):
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def home(request):
    return redirect("accounts:profile" if request.user.is_authenticated else "accounts:login")


# --- first run and registration ----------------------------------------------------------------


def _new_account_page(request, create, template, success_url):
    """First run and self-registration share one form: create the account, sign it in, go on."""
    form = NewAccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = create(email=data["email"], password=data["password1"], full_name=data["full_name"], request=request)
        except services.ServiceError as exc:
            _add_service_error(form, exc)
        else:
            _complete_sign_in(request, user, device=None)
            return redirect(success_url)
    return render(request, template, {"form": form})


@never_cache
@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def setup(request):
    if User.objects.exists():
        raise Http404("Dockspace is already set up.")
    response = _new_account_page(request, services.first_admin_create, "accounts/setup.html", "accounts:security")
    if response.status_code == 302:
        messages.success(request, "Welcome to Dockspace. Protect your account: add an authenticator app below.")
    return response


@never_cache
@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def register(request):
    if not AppSettings.load().self_registration_enabled:
        raise Http404("Self-registration is off.")
    return _new_account_page(request, services.user_create, "accounts/register.html", "accounts:profile")


# --- sign in -------------------------------------------------------------------------------------


def _complete_sign_in(request, user, device):
    login(request, user, backend=BACKEND)
    record_request_meta(
        request.session, ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT"), now=time.time()
    )
    if device is not None:
        otp_login(request, device)
    services.throttle_clear_account(user.email)
    audit(
        "signin.success",
        request=request,
        actor=user,
        target=user,
        description="Signed in with password and second factor." if device else "Signed in with password.",
    )


def _locked_message(minutes):
    return f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes != 1 else ''}."


@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def sign_in(request):
    form = SignInForm(request.POST or None)
    next_url = _next_url(request)
    if request.method == "POST" and form.is_valid():
        email, ip = form.cleaned_data["email"], client_ip(request)
        minutes = services.throttle_locked_minutes(email=email, ip=ip)
        if minutes:
            form.add_error(None, _locked_message(minutes))
        else:
            user = authenticate(request, email=email, password=form.cleaned_data["password"])
            if user is None:
                audit(
                    "signin.failure", request=request, description=f"Wrong password or unknown account {email[:120]}."
                )
                services.throttle_record_failure(email=email, ip=ip, request=request)
                minutes = services.throttle_locked_minutes(email=email, ip=ip)
                form.add_error(None, _locked_message(minutes) if minutes else "The email address or password is wrong.")
            elif user_has_device(user):
                request.session.cycle_key()
                request.session[PENDING_SIGN_IN] = {"user": user.pk, "at": time.time(), "next": next_url}
                return redirect("accounts:sign_in_code")
            else:
                _complete_sign_in(request, user, device=None)
                return redirect(next_url)
    return render(
        request,
        "accounts/sign_in.html",
        {"form": form, "next": next_url, "signed_in_as": request.user if request.user.is_authenticated else None},
    )


@never_cache
@require_http_methods(["GET", "POST"])
def sign_in_code(request):
    pending = request.session.get(PENDING_SIGN_IN)
    if not pending or time.time() - pending.get("at", 0) > PENDING_SIGN_IN_SECONDS:
        request.session.pop(PENDING_SIGN_IN, None)
        messages.info(
            request, "Please sign in again: the sign-in took too long." if pending else "Please sign in first."
        )
        return redirect("accounts:login")
    user = User.objects.filter(pk=pending["user"], is_active=True).first()
    if user is None:
        request.session.pop(PENDING_SIGN_IN, None)
        return redirect("accounts:login")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        ip = client_ip(request)
        minutes = services.throttle_locked_minutes(email=user.email, ip=ip)
        if minutes:
            form.add_error("code", _locked_message(minutes))
        else:
            code = form.cleaned_data["code"].strip().replace(" ", "")
            throttled = code.isdigit() and _totp_throttled(user)
            device = match_token(user, code)
            if device is None:
                audit(
                    "signin.code_failure",
                    request=request,
                    actor=user,
                    target=user,
                    description="Wrong or reused second-factor code.",
                )
                services.throttle_record_failure(email=user.email, ip=ip, request=request)
                form.add_error("code", TOTP_THROTTLED if throttled else "That code is wrong or has already been used.")
            else:
                del request.session[PENDING_SIGN_IN]
                _complete_sign_in(request, user, device=device)
                if isinstance(device, BackupCodeDevice):
                    messages.warning(request, f"You used a backup code; {device.remaining()} left.")
                return redirect(pending.get("next") or reverse("accounts:profile"))
    return render(request, "accounts/sign_in_code.html", {"form": form})


TOTP_THROTTLED = "Too many wrong codes in a row: wait a few seconds, then enter the current code."


def _totp_throttled(user):
    """django-otp makes a device wait after each wrong code; say so rather than "wrong code"."""
    devices = list(TOTPDevice.objects.filter(user=user, confirmed=True))
    return bool(devices) and all(not d.verify_is_allowed()[0] for d in devices)


@require_POST
def sign_out(request):
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect("accounts:login")


# --- password reset and change ----------------------------------------------------------------------


class PasswordResetView(auth_views.PasswordResetView):
    form_class = PasswordResetForm
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_sent")

    def get_extra_email_context(self):
        from django.conf import settings

        return {"base_url": settings.DOCKSPACE_URL, "site_name": AppSettings.load().site_name}

    def dispatch(self, request, *args, **kwargs):
        self.extra_email_context = self.get_extra_email_context()
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form):
        audit(
            "password.reset_requested",
            request=self.request,
            description=f"Reset link requested for {form.cleaned_data['email'][:120]}.",
        )
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_changed(user=form.user, request=self.request, how="Reset password with an emailed link.")
        services.sessions_revoke_all(user=form.user, request=self.request, actor=form.user)
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:security")

    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_changed(user=self.request.user, request=self.request)
        services.sessions_revoke_all(
            user=self.request.user, request=self.request, keep_hash=_current_session_hash(self.request)
        )
        messages.success(self.request, "Your password is changed; your other sessions were signed out.")
        return response


def _current_session_hash(request):
    from accounts.models import hash_session_key

    return hash_session_key(request.session.session_key) if request.session.session_key else None


# --- profile and security ---------------------------------------------------------------------------


@login_required
def profile(request):
    return render(request, "accounts/profile.html", {"person": request.user})


@login_required
@require_http_methods(["GET", "POST"])
def profile_edit(request):
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        audit("profile.change", request=request, target=request.user, description="Changed own profile.")
        messages.success(request, "Your profile is saved.")
        return redirect("accounts:profile")
    return render(request, "accounts/profile_edit.html", {"form": form})


@login_required
def security(request):
    user = request.user
    backup = BackupCodeDevice.objects.filter(user=user, confirmed=True).first()
    return render(
        request,
        "accounts/security.html",
        {
            "totp_devices": TOTPDevice.objects.filter(user=user, confirmed=True).order_by("name"),
            "backup_device": backup,
            "backup_remaining": backup.remaining() if backup else 0,
            "sessions": sessions_of(user, request.session.session_key),
            "device_form": DeviceNameForm(),
        },
    )


@login_required
@require_POST
def totp_add(request):
    form = DeviceNameForm(request.POST)
    if form.is_valid():
        try:
            device = services.totp_device_start(user=request.user, name=form.cleaned_data["name"])
        except services.ServiceError as exc:
            messages.error(request, f"Device name: {exc.message}")
            return redirect("accounts:security")
        request.session[ENROLLING_DEVICE] = device.pk
        return redirect("accounts:totp_confirm")
    for error in form.errors.get("name", []):
        messages.error(request, f"Device name: {error}")
    return redirect("accounts:security")


def _secret_text(device):
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def totp_confirm(request):
    device = TOTPDevice.objects.filter(
        user=request.user, confirmed=False, pk=request.session.get(ENROLLING_DEVICE)
    ).first()
    if device is None:
        messages.info(request, "Start by naming the device you want to add.")
        return redirect("accounts:security")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.totp_device_confirm(device=device, code=form.cleaned_data["code"], request=request)
        except services.ServiceError as exc:
            _add_service_error(form, exc)
        else:
            request.session.pop(ENROLLING_DEVICE, None)
            otp_login(request, device)
            messages.success(
                request, f"Device {device.name!r} is set up. You will be asked for a code when you sign in."
            )
            return redirect("accounts:security")
    qr_svg = segno.make(device.config_url, error="m").svg_inline(scale=5, dark="#111", light="#fff")
    return render(
        request,
        "accounts/totp_confirm.html",
        {
            "device": device,
            "form": form,
            "qr_svg": mark_safe(qr_svg),  # noqa: S308 - segno renders the SVG from our own URL
            "secret": _secret_text(device),
        },
    )


@never_cache
@login_required
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def device_remove(request, kind, pk):
    model = {"totp": TOTPDevice, "backup": BackupCodeDevice}.get(kind)
    if model is None:
        raise Http404("No such kind of device.")
    device = get_object_or_404(model, user=request.user, pk=pk)
    form = ReauthForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        services.device_remove(device=device, request=request)
        messages.success(request, f"Removed {device.name!r}.")
        return redirect("accounts:security")
    return render(request, "accounts/device_remove.html", {"device": device, "form": form})


@never_cache
@login_required
@require_POST
def backup_codes(request):
    codes = services.backup_codes_generate(user=request.user, request=request)
    return render(request, "accounts/backup_codes.html", {"codes": codes})


@login_required
@require_POST
def session_revoke(request, session_hash):
    current = _current_session_hash(request)
    try:
        services.session_revoke(user=request.user, session_hash=session_hash, request=request)
    except services.ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("accounts:security")
    if session_hash == current:
        return redirect("accounts:login")
    messages.success(request, "That session is signed out.")
    return redirect("accounts:security")


@login_required
@require_POST
def sessions_revoke_others(request):
    count = services.sessions_revoke_all(user=request.user, request=request, keep_hash=_current_session_hash(request))
    messages.success(request, f"Signed out {count} other session{'s' if count != 1 else ''}.")
    return redirect("accounts:security")


def no_access(request):
    return render(request, "accounts/no_access.html", status=403)
