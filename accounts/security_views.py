"""Self-service pages: profile, password, second-factor devices, backup codes and browser sessions.

Changes to how a person signs in need a session that passed the second factor (when the person has
one) and a password typed within the last few minutes.
"""

import time
from base64 import b32encode
from functools import wraps

import segno
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from accounts.audit import audit
from accounts.forms import CodeForm, DeviceNameForm, PasswordChangeForm, ProfileForm, ReauthForm
from accounts.models import BackupCodeDevice, hash_session_key
from accounts.selectors import profile_context, profile_panels, sessions_of, user_needs_second_factor
from accounts.sessions import AFTER_TOTP, AUTH_AT, forget_revoked_session, safe_next_url
from dockspace.validation import add_to_form, error_summary

ENROLLING_DEVICE = "_dockspace_enrolling_device"
REAUTH_SECONDS = 15 * 60


def _current_session_hash(request):
    return hash_session_key(request.session.session_key) if request.session.session_key else None


def _through_code_step(request):
    """A browser that signed in before the person had a device must pass the code step first."""
    if not user_needs_second_factor(request):
        return None
    logout(request)
    messages.info(request, "Sign in again with your code to change your security settings.")
    return redirect(f"{reverse('accounts:login')}?{urlencode({'next': reverse('accounts:security')})}")


def sign_in_changes(view):
    """Guard for changes to devices and codes: a verified session and a recently typed password."""

    @wraps(view)
    @login_required
    def guarded(request, *args, **kwargs):
        detour = _through_code_step(request)
        if detour:
            return detour
        if time.time() - request.session.get(AUTH_AT, 0) > REAUTH_SECONDS:
            back = request.get_full_path() if request.method == "GET" else reverse("accounts:security")
            return redirect(f"{reverse('accounts:reauth')}?{urlencode({'next': back})}")
        return view(request, *args, **kwargs)

    return guarded


@login_required
def profile(request):
    # The mailbox and the apps a person signed into come from the apps that hold them (profile_context); their mail
    # traffic is a panel of its own (profile_panels).
    context = {**profile_context(request.user), "person": request.user, "profile_panels": profile_panels(request)}
    return render(request, "accounts/profile.html", context)


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


def _security_page(request, device_form=None, status=200):
    user = request.user
    backup = BackupCodeDevice.objects.filter(user=user, confirmed=True).first()
    context = {
        "totp_devices": TOTPDevice.objects.filter(user=user, confirmed=True).order_by("name"),
        "backup_device": backup,
        "backup_remaining": backup.remaining() if backup else 0,
        "sessions": sessions_of(user, request.session.session_key),
        "device_form": device_form or DeviceNameForm(),
    }
    return render(request, "accounts/security.html", context, status=status)


@login_required
def security(request):
    return _security_page(request)


@never_cache
@login_required
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def reauth(request):
    form = ReauthForm(request.POST or None, user=request.user, request=request)
    if request.method == "POST" and form.is_valid():
        request.session[AUTH_AT] = time.time()
        return redirect(safe_next_url(request, "accounts:security"))
    return render(request, "accounts/reauth.html", {"form": form, "next": safe_next_url(request, "accounts:security")})


class PasswordChangeView(auth_views.PasswordChangeView):
    form_class = PasswordChangeForm
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:security")

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}

    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_changed(user=self.request.user, request=self.request)
        services.sessions_revoke_all(
            user=self.request.user, request=self.request, keep_hash=_current_session_hash(self.request)
        )
        messages.success(self.request, "Your password is changed; your other sessions were signed out.")
        return response


@sign_in_changes
@require_POST
def totp_add(request):
    form = DeviceNameForm(request.POST)
    if form.is_valid():
        try:
            device = services.totp_device_start(user=request.user, name=form.cleaned_data["name"])
        except ValidationError as exc:
            add_to_form(form, exc)
        else:
            request.session[ENROLLING_DEVICE] = device.pk
            return redirect("accounts:totp_confirm")
    return _security_page(request, device_form=form, status=400)


def _secret_text(device):
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@never_cache
@sign_in_changes
@require_http_methods(["GET", "POST"])
def totp_confirm(request):
    device = TOTPDevice.objects.filter(
        user=request.user, confirmed=False, pk=request.session.get(ENROLLING_DEVICE)
    ).first()
    if device is None:
        messages.info(request, "Start by naming the device you want to add.")
        return redirect("accounts:security")
    form = CodeForm(request.POST or None)
    # Confirming a new app takes a code from that app; a backup code proves nothing about it.
    form.fields["code"].help_text = "The 6-digit code the new app shows now."
    if request.method == "POST" and form.is_valid():
        first_device = not TOTPDevice.objects.filter(user=request.user, confirmed=True).exists()
        try:
            services.totp_device_confirm(device=device, code=form.cleaned_data["code"], request=request)
        except ValidationError as exc:
            add_to_form(form, exc)
        else:
            request.session.pop(ENROLLING_DEVICE, None)
            otp_login(request, device)
            if first_device:
                # Browsers signed in with the password alone would otherwise keep going without a code.
                services.sessions_revoke_all(
                    user=request.user, request=request, keep_hash=_current_session_hash(request)
                )
            messages.success(
                request,
                f"Device {device.name!r} is set up. You will be asked for a code when you sign in."
                + (" Now create backup codes below, for when this phone is lost." if first_device else ""),
            )
            # An app that requires a second factor sent this person here: take them back to it.
            after = request.session.pop(AFTER_TOTP, None)
            if after and url_has_allowed_host_and_scheme(after, {request.get_host()}, request.is_secure()):
                return redirect(after)
            return redirect("accounts:security")
    qr_svg = segno.make(device.config_url, error="m").svg_inline(scale=5, dark="#111", light="#fff", omitsize=True)
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
    detour = _through_code_step(request)
    if detour:
        return detour
    form = ReauthForm(request.POST or None, user=request.user, request=request)
    if request.method == "POST" and form.is_valid():
        services.device_remove(device=device, request=request)
        messages.success(request, f"Removed {device.name!r}.")
        return redirect("accounts:security")
    return render(request, "accounts/device_remove.html", {"device": device, "form": form})


@never_cache
@sign_in_changes
@require_POST
def backup_codes(request):
    if not TOTPDevice.objects.filter(user=request.user, confirmed=True).exists():
        # Backup codes stand in for an authenticator app: they come after the first one.
        messages.info(request, "Set up an authenticator app first; then you can create backup codes.")
        return redirect("accounts:security")
    codes = services.backup_codes_generate(user=request.user, request=request)
    return render(request, "accounts/backup_codes.html", {"codes": codes})


@login_required
@require_POST
def session_revoke(request, session_hash):
    try:
        services.session_revoke(user=request.user, session_hash=session_hash, request=request)
    except ValidationError as exc:
        messages.error(request, error_summary(exc))
        return redirect("accounts:security")
    if forget_revoked_session(request):
        return redirect("accounts:login")
    messages.success(request, "That session is signed out.")
    return redirect("accounts:security")


@login_required
@require_POST
def sessions_revoke_others(request):
    count = services.sessions_revoke_all(user=request.user, request=request, keep_hash=_current_session_hash(request))
    messages.success(request, f"Signed out {count} other session{'s' if count != 1 else ''}.")
    return redirect("accounts:security")
