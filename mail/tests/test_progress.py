"""Long mail commands show progress (rows done, rate, time left) on a terminal, nothing elsewhere,
and end with a summary line either way. The terminal is a real pseudo-terminal."""

import fcntl
import io
import os
import pty
import struct
import termios
import threading

import pytest
from django.core.management import call_command
from passlib.hash import sha512_crypt

from mail.dms import catalog
from mail.dms.render import ACCOUNTS_PATH, VIRTUAL_PATH
from mail.models import Mailbox
from mail.tests.factories import make_domain, make_mailbox

pytestmark = pytest.mark.django_db
tqdm = pytest.importorskip("tqdm", reason="tqdm (requirements.txt) is not installed")


def on_terminal(*args):
    """Run a command with stderr on a pseudo-terminal: (stdout text, what the terminal showed)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # 160 columns, like a terminal
    shown = []

    def read():
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:
                return
            if not data:
                return
            shown.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    out = io.StringIO()
    with os.fdopen(terminal, "w", encoding="utf-8") as stderr:
        call_command(*args, stdout=out, stderr=stderr)
    reader.join(timeout=10)
    os.close(controller)
    return out.getvalue(), b"".join(shown).decode("utf-8", "replace")


def off_terminal(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def csv_file(tmp_path):
    make_domain("example.com")
    path = tmp_path / "people.csv"
    rows = "".join(f"user{i}@example.com,User {i},1G\n" for i in range(30))
    path.write_text("address,name,quota\n" + rows)
    return path


def test_a_csv_import_on_a_terminal_shows_rows_done_rate_and_time_left(csv_file):
    out, shown = on_terminal("mailbox", "import", "--csv", str(csv_file))

    assert "writing mailboxes: 100%" in shown
    assert "30/30 [" in shown and "row/s]" in shown and "<00:00" in shown
    assert out.strip() == f"Imported 30 mailbox(es) from {csv_file}."
    assert Mailbox.objects.count() == 30


def test_a_csv_import_with_passwords_shows_the_hashing_too(tmp_path):
    make_domain("example.com")
    path = tmp_path / "people.csv"
    path.write_text("address,password\nann@example.com,a long enough pass phrase 1\n")

    out, shown = on_terminal("mailbox", "import", "--csv", str(path))

    assert "checking rows: 100%" in shown and "hashing passwords: 100%" in shown and "1/1 [" in shown
    assert out.strip() == f"Imported 1 mailbox(es) from {path}."


def test_a_csv_import_off_a_terminal_prints_only_its_summary(csv_file):
    out, err = off_terminal("mailbox", "import", "--csv", str(csv_file))

    assert err == ""
    assert out.strip() == f"Imported 30 mailbox(es) from {csv_file}."


@pytest.fixture
def old_dms(tmp_path):
    directory = tmp_path / "old-dms"
    directory.mkdir()
    hashed = "{SHA512-CRYPT}" + sha512_crypt.using(rounds=5000).hash("an old password")
    (directory / ACCOUNTS_PATH).write_text("".join(f"u{i}@example.com|{hashed}\n" for i in range(12)))
    (directory / VIRTUAL_PATH).write_text("info@example.com u1@example.com\n")
    return directory


def test_import_dms_files_on_a_terminal_shows_progress_and_ends_with_a_summary(old_dms):
    out, shown = on_terminal("import_dms_files", "--from", str(old_dms))

    assert "mailboxes: 100%" in shown and "12/12 [" in shown and "row/s]" in shown
    assert "aliases: 100%" in shown
    last = out.strip().splitlines()[-1]
    assert last.startswith("Done in ")
    assert last.endswith(": 12 mailbox(es), 1 alias(es) created, 0 already present, 0 line(s) not adopted.")


def test_import_dms_files_off_a_terminal_draws_no_bar(old_dms):
    out, err = off_terminal("import_dms_files", "--from", str(old_dms), "--dry-run")

    assert err == ""
    assert (
        out.strip()
        .splitlines()[-1]
        .endswith(": 12 mailbox(es), 1 alias(es) would be created, 0 already present, 0 line(s) not adopted.")
    )
    assert not Mailbox.objects.exists()


def test_a_full_export_on_a_terminal_counts_the_lines_written(dms_dir):
    for i in range(10):
        make_mailbox(f"u{i}@example.com")

    out, shown = on_terminal("export_dms_files")

    assert "DMS files: " in shown and "line/s]" in shown
    last = out.strip().splitlines()[-1]
    files = len([item for item in catalog.declared_files() if isinstance(item, catalog.DmsFile)])
    assert last.startswith(f"{files} written, 0 removed, 0 unchanged in ") and last.endswith(" s.")
    assert (dms_dir / ACCOUNTS_PATH).read_text().count("@example.com|") == 10


def test_a_full_export_off_a_terminal_draws_no_bar(dms_dir):
    make_mailbox("ann@example.com")

    out, err = off_terminal("export_dms_files")

    assert "\r" not in err and "DMS files" not in err
    assert "ann@example.com|" in (dms_dir / ACCOUNTS_PATH).read_text()
