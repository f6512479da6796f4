"""Pages: first run, sign in (password, then code), sign out, password reset, profile and security."""

import time

from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login
from django_otp import match_token, user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import first_run, services
from accounts.audit import audit
from accounts.forms import (
    CodeForm,
    PasswordResetForm,
    RegistrationForm,
    SignInForm,
)
from accounts.models import AppSettings, BackupCodeDevice, User
from accounts.registration import registration_confirm, registration_link_person, registration_request
from accounts.reset_mail import password_reset_request
from accounts.selectors import has_second_factor
from accounts.sessions import AUTH_AT, forget_revoked_session, record_request_meta, safe_next_url
from accounts.signals import sign_in_refused_send
from dockspace.client_ip import client_ip
from dockspace.validation import add_to_form

PENDING_SIGN_IN = "_dockspace_pending_sign_in"
PENDING_SIGN_IN_SECONDS = 300
ENROLLING_DEVICE = "_dockspace_enrolling_device"
BACKEND = "accounts.backends.EmailBackend"


def _next_url(request):
    return safe_next_url(request, "accounts:profile")


def home(request):
    return redirect("accounts:profile" if request.user.is_authenticated else "accounts:login")


# --- first run and registration ----------------------------------------------------------------


@never_cache
@sensitive_post_parameters("password1", "password2", "setup_code")
@require_http_methods(["GET", "POST"])
def setup(request):
    if User.objects.exists():
        first_run.setup_code_forget()
        raise Http404("Dockspace is already set up.")
    first_run.setup_code_issue()  # normally printed at start already; `manage.py setup_code` shows it
    form = first_run.SetupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = services.first_admin_create(
                email=data["email"], password=data["password1"], full_name=data["full_name"], request=request
            )
        except ValidationError as exc:
            add_to_form(form, exc)
        else:
            first_run.setup_code_forget()
            _complete_sign_in(request, user, device=None)
            messages.success(request, "Welcome to Dockspace. Protect your account: add an authenticator app below.")
            return redirect("accounts:security")
    return render(request, "accounts/setup.html", {"form": form})


def _registration_open():
    if not AppSettings.load().self_registration_enabled:
        raise Http404("Self-registration is off.")


@never_cache
@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def register(request):
    _registration_open()
    form = RegistrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        registration_request(
            email=data["email"], password=data["password1"], full_name=data["full_name"], request=request
        )
        return redirect("accounts:register_sent")
    return render(request, "accounts/register.html", {"form": form})


def register_sent(request):
    _registration_open()
    return render(request, "accounts/register_sent.html")


@never_cache
@require_http_methods(["GET", "POST"])
def register_confirm(request, uidb64, token):
    """Opening the link only shows a button: mail scanners that fetch links activate nothing, and
    nobody is signed in from a link (a link planted in someone's browser would sign them in as another)."""
    _registration_open()
    if request.method == "GET":
        person = registration_link_person(uidb64=uidb64, token=token)
        if person is None:
            return render(request, "accounts/register_invalid.html", status=400)
        return render(request, "accounts/register_confirm.html", {"email": person.email})
    user = registration_confirm(uidb64=uidb64, token=token, request=request)
    if user is None:
        return render(request, "accounts/register_invalid.html", status=400)
    messages.success(request, "Your address is confirmed and your account is ready: sign in with your password.")
    return redirect("accounts:login")


# --- sign in -------------------------------------------------------------------------------------


def _complete_sign_in(request, user, device, *, attempt=None):
    """attempt: the password check's reserved attempt, released here together with the account's failures.
    Its writes (the released attempt, last_login, the audit entry) are one transaction: one commit to wait for."""
    with transaction.atomic():
        if attempt is not None:
            services.signin_attempt_release(attempt, signed_in=True)
        else:
            services.throttle_clear_account(user.email)
        login(request, user, backend=BACKEND)
        record_request_meta(
            request.session, ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT"), now=time.time()
        )
        request.session[AUTH_AT] = time.time()
        if device is not None:
            otp_login(request, device)
        audit(
            "signin.success",
            request=request,
            actor=user,
            target=user,
            description="Signed in with password and second factor." if device else "Signed in with password.",
        )


@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def sign_in(request):
    form = SignInForm(request.POST or None)
    next_url = _next_url(request)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        attempt = services.signin_attempt_start(email=email, ip=client_ip(request))
        if attempt.locked_minutes:
            sign_in_refused_send(reason="locked_out", request=request)
            form.add_error(None, services.locked_message(attempt.locked_minutes))
        else:
            user = authenticate(request, email=email, password=form.cleaned_data["password"])
            if user is None:
                audit(
                    "signin.failure", request=request, description=f"Wrong password or unknown account {email[:120]}."
                )
                minutes = services.signin_attempt_failed(attempt, request=request)
                form.add_error(
                    None, services.locked_message(minutes) if minutes else "The email address or password is wrong."
                )
            elif has_second_factor(user):
                # The password was right, but failures stay counted until the code is right too.
                services.signin_attempt_release(attempt)
                request.session.cycle_key()
                request.session[PENDING_SIGN_IN] = {"user": user.pk, "at": time.time(), "next": next_url}
                return redirect("accounts:sign_in_code")
            else:
                _complete_sign_in(request, user, device=None, attempt=attempt)
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
        device = _second_factor(request, user, form)
        if device is not None:
            del request.session[PENDING_SIGN_IN]
            _complete_sign_in(request, user, device=device)
            _warn_backup_code(request, device)
            return redirect(pending.get("next") or reverse("accounts:profile"))
    return render(request, "accounts/sign_in_code.html", {"form": form})


def _second_factor(request, user, form):
    """Check the code in a valid CodeForm with the sign-in throttling; the matched device, or None
    with the reason added to the form."""
    attempt = services.signin_attempt_start(email=user.email, ip=client_ip(request))
    if attempt.locked_minutes:
        sign_in_refused_send(reason="locked_out", request=request)
        form.add_error("code", services.locked_message(attempt.locked_minutes))
        return None
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
        minutes = services.signin_attempt_failed(attempt, request=request)
        sign_in_refused_send(reason="code_failure", request=request)
        if minutes:
            form.add_error("code", services.locked_message(minutes))
        else:
            form.add_error("code", TOTP_THROTTLED if throttled else CODE_REFUSED)
        return None
    services.signin_attempt_release(attempt)
    return device


def _warn_backup_code(request, device):
    if isinstance(device, BackupCodeDevice):
        messages.warning(request, f"You used a backup code; {device.remaining()} left.")


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def verify_code(request):
    """Step up: a person signed in with the password alone proves their second factor (an app asked for it)."""
    next_url = _next_url(request)
    if request.user.is_verified():
        return redirect(next_url)
    if not user_has_device(request.user):
        return redirect("accounts:security")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = _second_factor(request, request.user, form)
        if device is not None:
            otp_login(request, device)
            audit(
                "signin.second_factor",
                request=request,
                target=request.user,
                description="Proved a second factor in an existing session.",
            )
            _warn_backup_code(request, device)
            return redirect(next_url)
    return render(request, "accounts/sign_in_code.html", {"form": form, "next": next_url, "step_up": True})


TOTP_THROTTLED = "A code was refused a moment ago: wait a few seconds, then enter the current code."
# A code typed the moment an app was set up is often the one just used to confirm it.
CODE_REFUSED = (
    "That code is wrong or has already been used. If you just set up your authenticator app, wait for the next "
    "code (codes change every 30 seconds)."
)


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
    success_url = reverse_lazy("accounts:password_reset_sent")

    def form_valid(self, form):
        password_reset_request(email=form.cleaned_data["email"], request=self.request)
        return redirect(self.success_url)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_changed(user=form.user, request=self.request, how="Reset password with an emailed link.")
        services.sessions_revoke_all(user=form.user, request=self.request, actor=form.user)
        forget_revoked_session(self.request)
        return response


def no_access(request):
    return render(request, "accounts/no_access.html", status=403)
