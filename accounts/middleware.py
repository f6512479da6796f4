"""Request middleware for sessions (idle timeout, who/where), first run and staff TOTP policy."""

import time

from django.contrib import messages
from django.contrib.auth import logout
from django.core.cache import cache
from django.shortcuts import redirect
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AppSettings, User
from accounts.sessions import AFTER_TOTP, META_LAST_SEEN, record_request_meta
from dockspace.client_ip import client_ip

# Machine endpoints answer even before the first administrator exists (apps, probes and Prometheus cannot sign up).
# "/health" covers /health, /health/ready and /healthz.
OPEN_PREFIXES = ("/static/", "/health", "/metrics", "/.well-known/", "/oauth/")

# What staff without a second factor may still reach when TOTP is required: what machines call (apps' servers,
# Dovecot, probes: no browser session is involved) and RP-initiated sign-out. Not /oauth/authorize/: signing
# into an app is a sign-in like any other.
MACHINE_PREFIXES = (
    "/static/",
    "/health",
    "/metrics",
    "/.well-known/",
    "/oauth/token/",
    "/oauth/revoke/",
    "/oauth/introspect/",
    "/oauth/userinfo/",
    "/oauth/mail-userinfo/",
    "/oauth/logout/",
)
APP_SIGN_IN_PATH = "/oauth/authorize/"


class SessionActivityMiddleware:
    """Signs out idle sessions and keeps each session's IP, browser and last activity up to date."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = request.session
        if request.user.is_authenticated:
            now = time.time()
            idle_limit = AppSettings.load().session_idle_timeout_minutes * 60
            last_seen = session.get(META_LAST_SEEN)
            if last_seen and now - last_seen > idle_limit:
                logout(request)
                messages.info(request, "You were signed out after a period of inactivity.")
            else:
                record_request_meta(
                    session, ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT"), now=now
                )
        return self.get_response(request)


class FirstRunMiddleware:
    """While no account exists, every page leads to the first-run registration page.

    Once an account exists that stays true, so the answer is kept in the shared cache (one lookup per
    request, no query) rather than in this process, which tests and several workers would not share."""

    CACHE_KEY = "accounts:has-accounts"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # Open paths first: the liveness probe must not depend on the cache or the database.
        if request.path.startswith(OPEN_PREFIXES):
            return self.get_response(request)
        if not cache.get(self.CACHE_KEY):
            if User.objects.exists():
                cache.set(self.CACHE_KEY, True, None)
            elif request.path != reverse("accounts:setup"):
                return redirect("accounts:setup")
        return self.get_response(request)


class StaffTotpMiddleware:
    """With "TOTP required for staff" on, staff without a device can only reach the enrolment pages."""

    # The password confirmation too: adding a device asks for it once the sign-in is 15 minutes old.
    ALLOWED_URL_NAMES = (
        "accounts:security",
        "accounts:reauth",
        "accounts:totp_add",
        "accounts:totp_confirm",
        "accounts:logout",
    )

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if (
            user.is_authenticated
            and user.is_staff
            and not request.path.startswith(MACHINE_PREFIXES)
            and AppSettings.load().totp_required_for_staff
        ):
            allowed = {reverse(name) for name in self.ALLOWED_URL_NAMES}
            if request.path not in allowed and not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
                if request.path == APP_SIGN_IN_PATH and request.method == "GET":
                    request.session[AFTER_TOTP] = request.get_full_path()  # back to the app once enrolled
                messages.warning(request, "Staff must set up two-factor authentication before going on.")
                return redirect("accounts:security")
        return self.get_response(request)
