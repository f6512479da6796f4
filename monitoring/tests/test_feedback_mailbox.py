"""The feedback mailbox read over IMAP from a real Dovecot on loopback (imaps, and imap with STARTTLS), its
certificate checked against DOCKSPACE_OUTBOUND_CA_BUNDLE: each new message stored as bounces and complaints, then
deleted, kept (seen) or moved; a refused sign-in, an untrusted certificate or a dead port are clear errors; the
command and the periodic task; the URL setting's rules."""

import io
import socket

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError

from dockspace.env import ImapMailbox, env_imap_mailbox
from monitoring import feedback_mailbox, tasks
from monitoring.models import FeedbackEvent
from monitoring.tests.feedback_imap import PASSWORD, USER, feedback_mailbox_server, skip_unless_imap
from monitoring.tests.feedback_traffic import fixture

pytestmark = pytest.mark.django_db


# --- the URL setting (pure) ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        (
            "imaps://bounces%40example.com@mail.example.com:993/INBOX",
            ImapMailbox(True, "mail.example.com", 993, "bounces@example.com", "INBOX"),
        ),
        ("imaps://fb@mail.example.com", ImapMailbox(True, "mail.example.com", 993, "fb", "INBOX")),
        (
            "imap://fb@mail.example.com/Feedback%20Loop",
            ImapMailbox(False, "mail.example.com", 143, "fb", "Feedback Loop"),
        ),
        ("imaps://fb@[2001:db8::25]:10993/INBOX", ImapMailbox(True, "2001:db8::25", 10993, "fb", "INBOX")),
        ("", None),
    ],
)
def test_the_mailbox_url_gives_server_user_and_folder(raw, expected):
    assert env_imap_mailbox("DOCKSPACE_FEEDBACK_MAILBOX", {"DOCKSPACE_FEEDBACK_MAILBOX": raw}) == expected


@pytest.mark.parametrize(
    "raw, message",
    [
        ("https://fb@mail.example.com/INBOX", "must be imaps://USER@HOST"),
        ("imaps://mail.example.com/INBOX", "the user is missing"),
        ("imaps://fb:secret-pass@mail.example.com/INBOX", "must not hold the password"),
        ("imaps://fb@mail.example.com:99999/INBOX", "cannot be read"),
        ("imaps://fb@mail.example.com/INBOX?x=1", "mean nothing here"),
        ('imaps://fb@mail.example.com/IN"BOX', "a quote or a backslash"),
    ],
)
def test_a_bad_mailbox_url_names_the_variable_and_the_rule(raw, message):
    with pytest.raises(ImproperlyConfigured, match="DOCKSPACE_FEEDBACK_MAILBOX") as caught:
        env_imap_mailbox("DOCKSPACE_FEEDBACK_MAILBOX", {"DOCKSPACE_FEEDBACK_MAILBOX": raw})
    assert message in str(caught.value)
    assert "secret-pass" not in str(caught.value)


def test_the_shown_mailbox_holds_no_password():
    mailbox = ImapMailbox(True, "mail.example.com", 993, "bounces@example.com", "INBOX")
    assert mailbox.describe() == "imaps://bounces@example.com@mail.example.com:993/INBOX"


# --- against Dovecot ------------------------------------------------------------------------------------------


@pytest.fixture
def imap(tmp_path, settings):
    skip_unless_imap()
    with feedback_mailbox_server(tmp_path) as server:
        settings.OUTBOUND_CA_BUNDLE = str(server.authority.cafile)
        settings.FEEDBACK_MAILBOX = server.mailbox()
        settings.FEEDBACK_PASSWORD = PASSWORD
        settings.FEEDBACK_AFTER_READ = "delete"
        settings.FEEDBACK_TIMEOUT = 10
        yield server


def kinds():
    return sorted(FeedbackEvent.objects.values_list("kind", flat=True))


def test_new_messages_are_stored_then_deleted_from_the_mailbox(imap):
    imap.append(fixture("postfix_failed.eml"))
    imap.append(fixture("arf_yahoo.eml"))
    result = feedback_mailbox.feedback_mailbox_fetch()
    assert (result.looked_at, result.stored, result.read_before, result.refused) == (2, 2, 0, [])
    assert kinds() == ["complaint", "hard", "soft"]
    assert set(FeedbackEvent.objects.values_list("source", flat=True)) == {
        f"imaps://{USER}@127.0.0.1:{imap.imaps_port}/INBOX"
    }
    assert imap.messages() == []
    again = feedback_mailbox.feedback_mailbox_fetch()
    assert (again.looked_at, again.stored) == (0, 0)
    assert FeedbackEvent.objects.count() == 3


def test_with_keep_they_stay_marked_seen_and_are_not_read_again(imap, settings):
    settings.FEEDBACK_AFTER_READ = "keep"
    imap.append(fixture("exim_failed.eml"))
    imap.append(fixture("gmail_failed.eml"), flags=r"(\Seen)")  # read by a person already: not new
    assert feedback_mailbox.feedback_mailbox_fetch().stored == 1
    assert [flags for flags, _ in imap.messages()] == [{r"\Seen"}, {r"\Seen"}]
    assert feedback_mailbox.feedback_mailbox_fetch().looked_at == 0
    assert kinds() == ["hard"]


def test_with_move_they_go_to_the_folder_seen(imap, settings):
    settings.FEEDBACK_AFTER_READ = "move:Processed"
    imap.create("Processed")
    raw = fixture("arf_microsoft_jmrp.eml")
    imap.append(raw)
    result = feedback_mailbox.feedback_mailbox_fetch()
    assert result.stored == 1 and result.summary().endswith("0 read before; moved to Processed")
    assert imap.messages() == []
    [(flags, moved)] = imap.messages("Processed")
    assert r"\Seen" in flags and moved.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")


def test_a_missing_move_folder_stops_before_any_message_is_touched(imap, settings):
    settings.FEEDBACK_AFTER_READ = "move:Nowhere"
    imap.append(fixture("exim_failed.eml"))
    with pytest.raises(feedback_mailbox.FeedbackMailboxError, match="'Nowhere' of DOCKSPACE_FEEDBACK_AFTER_READ"):
        feedback_mailbox.feedback_mailbox_fetch()
    assert [flags for flags, _ in imap.messages()] == [set()]
    assert FeedbackEvent.objects.count() == 0


def test_a_message_already_stored_from_a_pipe_is_not_stored_again_but_is_cleared(imap):
    from monitoring.feedback import feedback_ingest

    feedback_ingest(raw=fixture("exim_failed.eml"), source="stdin")
    imap.append(fixture("exim_failed.eml"))  # LF as piped; Dovecot serves it with CRLF
    result = feedback_mailbox.feedback_mailbox_fetch()
    assert (result.stored, result.read_before) == (0, 1)
    assert FeedbackEvent.objects.count() == 1 and imap.messages() == []


def test_a_message_the_ingest_refuses_stays_seen_and_is_named(imap, monkeypatch):
    monkeypatch.setattr(feedback_mailbox, "MAX_REPORT_BYTES", 2000)
    big = fixture("postfix_failed.eml")
    assert len(big) > 2000
    imap.append(big)
    imap.append(b"From: someone@example.net\r\nSubject: out of office\r\n\r\nBack on Monday.\r\n")
    result = feedback_mailbox.feedback_mailbox_fetch()
    assert result.stored == 1 and len(result.refused) == 1
    assert "a report is at most 2,000 bytes" in result.refused[0]
    [(flags, kept)] = imap.messages()
    assert flags == {r"\Seen"} and kept.replace(b"\r\n", b"\n") == big.replace(b"\r\n", b"\n")


def test_starttls_on_the_imap_port_works_as_imaps_does(imap, settings):
    settings.FEEDBACK_MAILBOX = imap.mailbox(implicit=False)
    imap.append(fixture("gmail_failed.eml"))
    assert feedback_mailbox.feedback_mailbox_fetch().stored == 1


def test_a_wrong_password_is_a_clear_error_without_the_password(imap, settings):
    settings.FEEDBACK_PASSWORD = "not-the-password-9"
    imap.append(fixture("gmail_failed.eml"))
    with pytest.raises(feedback_mailbox.FeedbackMailboxError) as caught:
        feedback_mailbox.feedback_mailbox_fetch()
    assert f"signing in as {USER} was refused" in str(caught.value)
    assert "not-the-password-9" not in str(caught.value) and "DOCKSPACE_FEEDBACK_PASSWORD" in str(caught.value)
    assert [flags for flags, _ in imap.messages()] == [set()]


def test_a_certificate_from_an_unknown_ca_is_refused(imap, settings):
    settings.OUTBOUND_CA_BUNDLE = ""  # the system's store only: the test CA is not in it
    for implicit in (True, False):
        settings.FEEDBACK_MAILBOX = imap.mailbox(implicit=implicit)
        with pytest.raises(feedback_mailbox.FeedbackMailboxError, match="certificate is not trusted"):
            feedback_mailbox.feedback_mailbox_fetch()


def test_a_missing_folder_is_named(imap, settings):
    settings.FEEDBACK_MAILBOX = imap.mailbox(folder="Bounces")
    with pytest.raises(
        feedback_mailbox.FeedbackMailboxError, match="the folder 'Bounces' of DOCKSPACE_FEEDBACK_MAILBOX"
    ):
        feedback_mailbox.feedback_mailbox_fetch()


def test_the_command_prints_the_summary(imap):
    imap.append(fixture("postfix_failed.eml"))
    out = io.StringIO()
    call_command("feedback", "fetch", stdout=out)
    assert "1 new message(s), 1 stored (hard 1, soft 1, complaint 0, other 0), 0 read before; deleted" in out.getvalue()


def test_the_periodic_task_reads_the_mailbox(imap):
    imap.append(fixture("arf_yahoo.eml"))
    assert "1 stored" in tasks.fetch_feedback()
    assert kinds() == ["complaint"]


# --- without a server -----------------------------------------------------------------------------------------


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_command_exits_non_zero_with_the_reason_when_nothing_listens(settings):
    port = closed_port()
    settings.FEEDBACK_MAILBOX = ImapMailbox(True, "127.0.0.1", port, USER, "INBOX")
    settings.FEEDBACK_PASSWORD = PASSWORD
    with pytest.raises(CommandError, match=f"the feedback mailbox cannot be read: cannot connect to 127.0.0.1:{port}"):
        call_command("feedback", "fetch")


def test_a_server_that_says_nothing_times_out(settings):
    settings.FEEDBACK_MAILBOX = None
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        settings.FEEDBACK_MAILBOX = ImapMailbox(True, "127.0.0.1", port, USER, "INBOX")
        settings.FEEDBACK_PASSWORD = PASSWORD
        settings.FEEDBACK_TIMEOUT = 1
        with pytest.raises(feedback_mailbox.FeedbackMailboxError, match="did not answer within 1 s"):
            feedback_mailbox.feedback_mailbox_fetch()


def test_without_the_setting_the_task_does_nothing_and_the_command_says_so(settings):
    settings.FEEDBACK_MAILBOX = None
    assert tasks.fetch_feedback() == "DOCKSPACE_FEEDBACK_MAILBOX is not set: no feedback mailbox to read"
    with pytest.raises(CommandError, match="DOCKSPACE_FEEDBACK_MAILBOX is not set"):
        call_command("feedback", "fetch")


# --- the settings at startup ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"DOCKSPACE_FEEDBACK_MAILBOX": "imaps://fb@mail.example.com/INBOX"},
            "DOCKSPACE_FEEDBACK_MAILBOX is set but DOCKSPACE_FEEDBACK_PASSWORD (or DOCKSPACE_FEEDBACK_PASSWORD_FILE) "
            "is not",
        ),
        ({"DOCKSPACE_FEEDBACK_AFTER_READ": "archive"}, "DOCKSPACE_FEEDBACK_AFTER_READ must be delete, keep or move:"),
        ({"DOCKSPACE_FEEDBACK_AFTER_READ": "move:"}, "DOCKSPACE_FEEDBACK_AFTER_READ must be delete, keep or move:"),
    ],
)
def test_startup_refuses_an_incomplete_feedback_mailbox_setting(tmp_path, env, message):
    from dockspace.tests.test_env import _start

    result = _start({"DEBUG": "1", "DOCKSPACE_DATA_DIR": str(tmp_path), **env})
    assert result.returncode != 0 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_password_may_come_from_a_file(tmp_path):
    from dockspace.tests.test_env import _start

    secret = tmp_path / "feedback-password"
    secret.write_text("from-a-file\n")
    env = {
        "DEBUG": "1",
        "DOCKSPACE_DATA_DIR": str(tmp_path),
        "DOCKSPACE_FEEDBACK_MAILBOX": "imaps://fb@mail.example.com/INBOX",
        "DOCKSPACE_FEEDBACK_PASSWORD_FILE": str(secret),
    }
    result = _start(env, "shell", "-c", "from django.conf import settings; print(settings.FEEDBACK_PASSWORD)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "from-a-file"
