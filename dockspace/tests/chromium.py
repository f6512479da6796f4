"""What the headless Chromium tests share besides the `page` fixture (root conftest.py): waiting for a page,
screenshots for the README's gallery, and the code an authenticator app would show."""

import base64
import os
import shutil
from pathlib import Path

from django.conf import settings
from django_otp.oath import TOTP

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
IMAGES = Path(settings.BASE_DIR) / "docs" / "images"


def click_and_wait(page, selector):
    """Click something that loads a new page and wait until that page has fully loaded.

    Without the wait, an assertion can read the old page, or the new one while it is still being parsed.
    """
    with page.expect_navigation(wait_until="load"):
        page.click(selector)


def shot(page, name):
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / f"{name}.png"), full_page=True)


def current_code(secret_text, steps_ahead=0):
    """What an authenticator app shows now; one step ahead is still accepted (clock drift tolerance)."""
    secret = secret_text.replace(" ", "")
    totp = TOTP(base64.b32decode(secret + "=" * (-len(secret) % 8)))
    totp.time += steps_ahead * totp.step
    return f"{totp.token():06d}"
