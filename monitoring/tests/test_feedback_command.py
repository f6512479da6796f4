"""`manage.py feedback ingest`: one message from stdin (as a Postfix pipe gives it) or --file, every message of an
--mbox or --maildir; what each came to, printed; a clear message and a non-zero exit for input that holds no message."""

import io
import json
import mailbox
import subprocess
import sys

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError

from accounts.tests.factories import UserFactory
from monitoring import feedback
from monitoring.management.commands.feedback import Command
from monitoring.models import FeedbackEvent
from monitoring.tests.feedback_traffic import FIXTURES, NOW, fixture, the_fixtures_traffic

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def now():
    with time_machine.travel(NOW, tick=False):
        yield


class Stdin(io.TextIOWrapper):
    """sys.stdin's shape: text on top of the bytes the command reads (.buffer)."""


def run(*args, stdin=b""):
    """The command with `stdin` as its standard input: what it printed on stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    command = Command(stdout=out, stderr=err)
    command.stdin = Stdin(io.BytesIO(stdin))
    call_command(command, "ingest", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_bounce_piped_in_is_stored_and_told_with_its_tie():
    the_fixtures_traffic()
    out, _ = run(stdin=fixture("gmail_failed.eml"))
    assert out.splitlines() == [
        "#1: hard 5.1.1 frank.nosuch@gmail.com (message 7D4A66E8B5, sent from 192.0.2.11): 5.1.1 failed: bad "
        "destination mailbox address (the address does not exist)",
        "Read 1 message(s): 1 new event(s) (hard 1, soft 0, complaint 0, other 0); 0 read before, not stored again.",
    ]
    assert FeedbackEvent.objects.get().source == "stdin"


def test_a_file_read_twice_is_stored_once_and_says_so(tmp_path):
    path = FIXTURES / "arf_aol.eml"
    run("--file", str(path))
    out, _ = run("--file", str(path))
    assert out.startswith("#1: read before (sha256 ")
    assert "'Email Feedback Report for IP 192.0.2.10'" in out
    assert "0 new event(s)" in out and "1 read before" in out
    assert FeedbackEvent.objects.get().source == f"file:{path}"


def test_a_message_saved_with_an_mbox_from_line_is_read(tmp_path):
    path = tmp_path / "saved.eml"
    path.write_bytes(b"From MAILER-DAEMON Tue Dec  8 10:00:00 2026\n" + fixture("exim_failed.eml"))
    out, _ = run("--file", str(path))
    assert out.startswith("#1: hard 5.1.1 erin@example.net (no message found): 5.1.1 failed")


def test_every_message_of_an_mbox_is_read_in_order(tmp_path):
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(str(path))
    for name in ("postfix_failed.eml", "arf_yahoo.eml", "auto_reply.eml"):
        box.add(fixture(name))
    box.close()
    out, _ = run("--mbox", str(path), "--json")
    data = json.loads(out)
    assert data["source"] == f"mbox:{path}"
    assert [(row["number"], row["kind"], [e["recipient"] for e in row["events"]]) for row in data["messages"]] == [
        (1, "hard", ["bob@example.org", "carol@example.org"]),
        (2, "complaint", ["kate@yahoo.com"]),
        (3, "other", [""]),
    ]
    assert FeedbackEvent.objects.count() == 4


def test_every_message_of_a_maildir_is_read(tmp_path):
    box = mailbox.Maildir(str(tmp_path / "Maildir"), create=True)
    for name in ("gmail_over_quota.eml", "arf_microsoft_jmrp.eml"):
        box.add(fixture(name))
    out, _ = run("--maildir", str(tmp_path / "Maildir"))
    assert "Read 2 message(s): 2 new event(s) (hard 0, soft 1, complaint 1, other 0)" in out
    assert sorted(FeedbackEvent.objects.values_list("kind", flat=True)) == ["complaint", "soft"]


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        ([], b"", "stdin: stdin is empty: give one message (headers, blank line, body)"),
        ([], b"\n\n", "stdin: stdin is empty"),
        ([], b"\x00\x01binary", "stdin: stdin is not an email message: its first line is not a header field"),
        ([], b"hello there\nsecond line\n", "stdin: stdin is not an email message"),
        (["--file", "/nonexistent/bounce.eml"], b"", "--file: no such file: /nonexistent/bounce.eml"),
        (["--mbox", "/nonexistent/box"], b"", "--mbox: no such file: /nonexistent/box"),
        (["--maildir", "/nonexistent/Maildir"], b"", "--maildir: /nonexistent/Maildir is not a maildir: it needs"),
    ],
)
def test_input_that_holds_no_message_exits_non_zero_naming_the_input(args, stdin, message):
    with pytest.raises(CommandError) as refused:
        run(*args, stdin=stdin)
    assert str(refused.value).startswith(message), str(refused.value)
    assert not FeedbackEvent.objects.exists()


def test_a_directory_a_non_mbox_and_an_empty_mbox_are_refused(tmp_path):
    with pytest.raises(CommandError, match="--file: .* is a directory; give --maildir for a maildir"):
        run("--file", str(tmp_path))
    (tmp_path / "box").write_bytes(fixture("arf_yahoo.eml"))
    with pytest.raises(CommandError, match="--mbox: .* is not an mbox: an mbox starts with a 'From ' line"):
        run("--mbox", str(tmp_path / "box"))
    (tmp_path / "Maildir").mkdir()
    for sub in ("cur", "new", "tmp"):
        (tmp_path / "Maildir" / sub).mkdir()
    with pytest.raises(CommandError, match="--maildir: it holds no message"):
        run("--maildir", str(tmp_path / "Maildir"))


def test_one_message_too_big_in_an_mbox_is_named_and_the_others_are_stored(tmp_path, monkeypatch):
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(str(path))
    box.add(fixture("arf_aol.eml"))
    box.add(fixture("postfix_failed.eml") + b"x" * 4000)
    box.close()
    monkeypatch.setattr(feedback, "MAX_REPORT_BYTES", 4000)
    with pytest.raises(CommandError, match=r"1 message\(s\) could not be read \(above\); the others were stored"):
        run("--mbox", str(path))
    assert FeedbackEvent.objects.count() == 1


def test_a_database_that_cannot_be_reached_exits_75_so_a_postfix_pipe_tries_again(monkeypatch):
    def unreachable(**kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(feedback, "feedback_ingest", unreachable)
    with pytest.raises(CommandError) as refused:
        run(stdin=fixture("arf_yahoo.eml"))
    assert refused.value.returncode == 75
    assert "the database cannot be reached (connection refused)" in str(refused.value)


def test_a_staff_member_without_the_permission_is_refused_before_the_input_is_read():
    UserFactory(email="ops@example.com", is_staff=True)
    with pytest.raises(CommandError, match="you do not have the permission 'monitoring.add_feedbackevent'"):
        run("--as", "ops@example.com", "--file", "/nonexistent/bounce.eml")


def test_the_help_says_how_to_feed_it_from_the_mail_host():
    out = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "feedback", "--help"],
        capture_output=True,
        text=True,
        env={"DEBUG": "1", "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    out = " ".join(out.split())  # argparse wraps the text at the terminal's width
    assert "manage.py feedback ingest < bounce.eml" in out
    assert '|/srv/dockspace/manage.py feedback ingest"' in out


@pytest.mark.django_db(transaction=True)
def test_stdin_from_a_real_pipe_is_read_as_bytes(tmp_path):
    # The command as Postfix's pipe runs it: a separate process, the message on its standard input.
    from dockspace.tests.celery_processes import database_url

    env = {"DEBUG": "1", "PATH": "/usr/bin:/bin", "DATABASE_URL": database_url(), "DOCKSPACE_DATA_DIR": str(tmp_path)}
    manage = str(settings.BASE_DIR / "manage.py")
    done = subprocess.run(
        [sys.executable, manage, "feedback", "ingest"],
        input=fixture("microsoft_ndr.eml"),
        env=env,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("#1: hard 5.1.10 henry@contoso.com (no message found)")
    garbage = subprocess.run([sys.executable, manage, "feedback", "ingest"], input=b"", env=env, capture_output=True)
    assert garbage.returncode == 1
    assert garbage.stderr.decode().strip().splitlines()[-1] == (
        "CommandError: stdin: stdin is empty: give one message (headers, blank line, body)"
    )
