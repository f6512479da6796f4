"""Finding 14: reset and registration tokens never reach gunicorn's access log."""

import datetime
import io
import logging
from types import SimpleNamespace

from django.urls import reverse
from gunicorn.config import Config

from dockspace.access_log import MaskingLogger, mask_secret_paths

TOKEN = "cn0abc-0123456789abcdef0123456789abcdef"


def test_the_real_reset_and_registration_urls_are_masked():
    reset = reverse("accounts:password_reset_confirm", kwargs={"uidb64": "MQ", "token": TOKEN})
    register = reverse("accounts:register_confirm", kwargs={"uidb64": "MQ", "token": TOKEN})
    assert mask_secret_paths(reset) == "/password/reset/MQ/***/"
    assert mask_secret_paths(register) == "/register/confirm/MQ/***/"
    assert mask_secret_paths(f"GET {reset}?x=1 HTTP/1.1") == "GET /password/reset/MQ/***/?x=1 HTTP/1.1"


def test_other_paths_are_logged_as_they_are():
    for path in ["/password/reset/", "/password/reset/sent/", "/password/reset/MQ/set-password/", "/profile/"]:
        assert mask_secret_paths(path) == path


def access_line(path, referer="-"):
    config = Config()
    config.set("accesslog", "-")
    logger = MaskingLogger(config)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.access_log.handlers = [handler]
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": path,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_REFERER": referer,
    }
    response = SimpleNamespace(status="200 OK", sent=10, headers=[])
    request = SimpleNamespace(headers=[("REFERER", referer)])
    logger.access(response, request, environ, datetime.timedelta(seconds=0.01))
    return stream.getvalue()


def test_gunicorns_access_line_masks_the_token_in_the_path_and_the_referrer():
    reset = reverse("accounts:password_reset_confirm", kwargs={"uidb64": "MQ", "token": TOKEN})
    line = access_line(reset, referer="https://id.example.com" + reset)
    assert TOKEN not in line
    assert line.count("/password/reset/MQ/***/") == 2
    assert '"GET /profile/ HTTP/1.1" 200' in access_line("/profile/")
