"""The DMS sync page in the admin: once the files are written again, it no longer reports drift."""

import pytest

from mail.dms import sync
from mail.models import DmsSyncState
from mail.tests.factories import make_mailbox

pytestmark = pytest.mark.django_db

DRIFT = "Drift was found in the files on disk."


@pytest.fixture
def drifted(settings):
    make_mailbox("bob@example.com")
    sync.dms_sync()
    path = settings.DMS_DIR / "postfix-virtual.cf"
    path.write_text(path.read_text() + "intruder@example.com evil@x.org\n")
    sync.dms_scan(repair=False)
    return path


def page(browser):
    return browser.get("/admin/mail/dmssyncstate/").content.decode()


def act(browser, action):
    data = {"action": action, "_selected_action": [DmsSyncState.load().pk]}
    return browser.post("/admin/mail/dmssyncstate/", data, follow=True)


def test_drift_found_by_a_scan_stays_on_the_page_until_it_is_repaired(browser, drifted):
    assert DRIFT in page(browser)
    assert DRIFT in page(browser)  # reading the page changes nothing


def test_repairing_from_the_page_clears_the_drift_at_once(browser, drifted):
    response = act(browser, "scan_now")

    assert "Drift repaired in 1 file(s)." in response.content.decode()
    assert "intruder" not in drifted.read_text()
    assert DRIFT not in page(browser)
    state = DmsSyncState.load()
    assert (state.drift_report, state.drift_found_at) == ("", None)


def test_writing_the_files_from_the_page_clears_the_drift(browser, drifted):
    act(browser, "write_now")

    assert "intruder" not in drifted.read_text()
    assert DRIFT not in page(browser)


def test_a_failed_write_leaves_the_drift_reported(browser, drifted, settings):
    settings.DMS_DIR = drifted  # a file, not a directory: the write fails

    response = act(browser, "write_now")

    assert "Could not write the DMS files" in response.content.decode()
    assert DRIFT in page(browser)
