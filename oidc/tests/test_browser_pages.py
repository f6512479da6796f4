"""Every page, the admin included, works in headless Chromium under the Content-Security-Policy with
no violation, and the audit log's columns fit a 1280 px screen. Uses the shared Chromium `page` (conftest.py)."""

import base64
import hashlib
import secrets
from urllib.parse import urlencode

import pytest
from django.contrib import admin
from django.urls import reverse

from accounts.models import AuditEvent
from accounts.tests.factories import PASSWORD, StaffFactory
from dockspace.tests.chromium import click_and_wait
from mail import services as mail_services
from mail.tests.factories import make_domain, make_mailbox, make_tier
from oidc import services as oidc_services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(
    `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


class CspWatch:
    """Collects CSP violations: the DOM event on every page and Chromium's console reports."""

    def __init__(self, page):
        self.page = page
        self.console = []
        page.context.add_init_script(WATCH_CSP)
        page.on("console", self._console)
        # A script that fails under the policy (or at all) counts as well: the admin's scripts must run.
        page.on("pageerror", lambda error: self.console.append(f"{self.page.url}: script error: {error}"))

    def _console(self, message):
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.console.append(f"{self.page.url}: {message.text}")

    def visit(self, url):
        response = self.page.goto(url, wait_until="load")
        assert response.status < 500 and response.status != 404, f"{url}: HTTP {response.status}"
        return response

    def violations(self):
        try:
            found = self.page.evaluate("window.__cspViolations || []")
        except Exception:  # the page is navigating
            found = []
        return [f"{self.page.url}: {v}" for v in found] + self.console


@pytest.fixture
def csp(page):
    return CspWatch(page)


def sign_in(page, email):
    page.goto(page.base + "/login/")
    page.fill("#id_email", email)
    page.fill("#id_password", PASSWORD)
    click_and_wait(page, "main button[type=submit]")


def some_of_everything():
    """One row of each kind the admin shows, so every change form renders with data."""
    tier = make_tier()
    domain = make_domain("example.com", tier=tier)
    bob = make_mailbox("bob@example.com", full_name="Bob")
    make_mailbox("ann@example.com", full_name="Ann")
    mail_services.alias_create(address="info@example.com", targets=["bob@example.com"], actor_label="test")
    mail_services.group_create(name="staff", members=[bob.person], actor_label="test")
    mail_services.dkim_generate(domain=domain, algorithm="ed25519", actor_label="test")
    return bob


def admin_urls():
    """The changelist, add form and first object's change form of every model in the admin."""
    urls = [reverse("admin:index")]
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        if model_admin.has_add_permission(_SuperuserRequest()):
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk]))
    return urls


class _SuperuserRequest:
    class user:  # noqa: N801 - a stand-in for request.user
        is_active = is_staff = is_superuser = True

        @staticmethod
        def has_perm(perm, obj=None):
            return True


def test_first_run_and_sign_in_pages_have_no_csp_violation(page, csp):
    response = csp.visit(page.base + "/setup/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    StaffFactory(email="root@example.com")
    for path in ["/login/", "/password/reset/"]:
        csp.visit(page.base + path)
    assert csp.violations() == []


def test_every_page_and_every_admin_page_works_under_the_policy(page, csp):
    some_of_everything()
    StaffFactory(email="root@example.com")
    sign_in(page, "root@example.com")
    assert page.url.endswith("/profile/")

    for path in ["/profile/", "/profile/edit/", "/security/", "/security/password/", "/no-access/"]:
        csp.visit(page.base + path)
    # The authenticator enrolment page: its QR code is inline SVG, which must still render.
    csp.visit(page.base + "/security/")
    page.fill("#id_name", "Phone")
    click_and_wait(page, "text=Add authenticator app")
    box = page.locator(".qr svg").bounding_box()
    assert box and box["width"] > 50 and box["height"] > 50
    assert csp.violations() == []

    visited = []
    for url in admin_urls():
        csp.visit(page.base + url)
        visited.append(url)
        assert csp.violations() == [], visited[-1]
    assert len(visited) > 30

    # django-celery-beat's crontab help, its inline script moved to static/js, still reads the crontab in words.
    from django_celery_beat.models import CrontabSchedule

    crontab = CrontabSchedule.objects.create(minute="17", hour="3")
    csp.visit(page.base + reverse("admin:django_celery_beat_periodictask_add"))
    page.select_option("#id_crontab", str(crontab.pk))
    page.dispatch_event("#id_crontab", "change")
    assert "Translation: At 03:17" in page.locator(".field-crontab .help").inner_text()

    # The admin's own scripts run under the policy: "select all" in a changelist ticks every row.
    csp.visit(page.base + reverse("admin:mail_mailbox_changelist"))
    page.click("#action-toggle")
    assert page.locator("input.action-select:checked").count() == 2
    assert csp.violations() == []


def test_the_oidc_consent_page_and_its_redirect_to_the_app_pass_the_policy(page, csp, live_server):
    port = live_server.url.rsplit(":", 1)[1]
    redirect_uri = f"http://127.0.0.1:{port}/healthz"  # another origin than the live server's localhost
    app, _secret = oidc_services.client_create(name="Team Wiki", redirect_uris=[redirect_uri], actor_label="test")
    StaffFactory(email="root@example.com")
    sign_in(page, "root@example.com")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "client_id": app.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": "openid email",
            "state": "s1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    response = csp.visit(page.base + "/oauth/authorize/?" + query)
    assert page.locator("h1").inner_text() == "Allow Team Wiki?"
    assert f"form-action 'self' http://127.0.0.1:{port}" in response.headers["content-security-policy"]
    assert csp.violations() == []
    click_and_wait(page, "button[name=allow]")
    assert page.url.startswith(redirect_uri + "?code="), page.url
    assert csp.violations() == []


def test_the_audit_logs_columns_are_on_screen_at_1280_and_1600_pixels(page):
    StaffFactory(email="root@example.com")
    for n in range(5):
        AuditEvent.objects.create(
            action="mail.mailbox.add",
            actor_label="manage.py mailbox",
            target_label=f"someone-with-a-long-address-{n}@a-rather-long-domain-name.example.com",
            description="Created the mailbox with quota 5G; " + "a long description of what happened " * 6,
            ip="2001:db8:85a3:1234:5678:8a2e:370:7334",
        )
    sign_in(page, "root@example.com")
    for width in (1280, 1600):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(page.base + reverse("admin:accounts_auditevent_changelist"), wait_until="load")
        visible = page.locator("#changelist .results").bounding_box()  # the table scrolls inside this box
        right_edge = min(width, visible["x"] + visible["width"])
        for column in ["action", "target_label", "description"]:
            header, first_cell = f"thead th.column-{column}", f"tbody tr:first-child td.field-{column}"
            for cell in (f"#result_list {header}", f"#result_list {first_cell}"):
                box = page.locator(cell).bounding_box()
                assert box is not None, cell
                assert box["x"] >= 0 and box["x"] + box["width"] <= right_edge + 1, (width, cell, box, right_edge)
        if width == 1280:
            page.screenshot(path=str(_images() / "23-admin-audit-log-1280.png"))


def _images():
    from dockspace.tests.chromium import IMAGES

    IMAGES.mkdir(parents=True, exist_ok=True)
    return IMAGES
