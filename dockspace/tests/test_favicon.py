"""The site's icon: /favicon.ico answers (browsers ask for it on their own) and every page links an icon."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db


def linked_icons(page):
    return re.findall(r'<link rel="icon" href="([^"]+)"', page)


def test_favicon_ico_is_served_to_anyone_without_signing_in():
    response = Client().get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO file


@pytest.mark.parametrize("url", ["/login/", "/no-such-page/"])
def test_the_sites_pages_link_icons_that_load(url):
    get_user_model().objects.create_user("ann@example.com")  # past the first-run setup
    browser = Client()

    icons = linked_icons(browser.get(url).content.decode())

    assert "/favicon.ico" in icons and any(icon.endswith(".svg") for icon in icons)
    for icon in icons:
        assert browser.get(icon).status_code == 200, icon


def test_the_admin_links_the_icon_too():
    browser = Client()
    browser.force_login(get_user_model().objects.create_superuser("root@example.com"))

    assert "/favicon.ico" in linked_icons(browser.get("/admin/").content.decode())
