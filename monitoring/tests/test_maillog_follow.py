"""The mail-log follower on real files: restarts, rotations as DMS's logrotate does them (and rename + create),
truncation, half-written lines; every line handed out exactly once, in order. No database."""

import gzip
import json
import os
import threading
import time

import pytest

from monitoring.maillog import follow as follow_module
from monitoring.maillog.follow import (
    Checkpoint,
    FileFollower,
    FileId,
    find_rotated,
    follow,
    head_of,
    read_lines,
    rotated_names,
)
from monitoring.tests.mail_log_files import logrotate, read_all


def mail_lines(tag, count, start=1):
    return [
        f"2026-12-06T10:15:02.{n:06d}+00:00 mail postfix/smtpd[1234]: 4Ab{tag}{n}: client=mx.example.net[203.0.113.5]"
        for n in range(start, start + count)
    ]


def test_it_reads_lines_written_before_and_after_a_copytruncate_rotation_once_in_order(log_path, syslog):
    before, unread, after = mail_lines("A", 3), mail_lines("A", 4, start=4), mail_lines("B", 3)
    follower = FileFollower(log_path)
    syslog.lines(*before)
    assert follower.read_batch().lines == before
    syslog.lines(*unread)
    logrotate(log_path)  # DMS: mail.log copied to mail.log.1, then truncated (same inode)
    syslog.lines(*after)
    assert os.stat(log_path).st_ino == follower.checkpoint.inode

    batch = follower.read_batch()

    assert batch.lines == unread + after
    assert batch.notes == (f"finished rotated file {log_path}.1",)
    assert not batch.has_gap
    assert read_all(follower) == ([], [])


def follower_bytes(lines):
    return sum(len(line.encode()) + 1 for line in lines)


def test_it_finishes_a_renamed_file_before_reading_the_new_one(log_path, syslog):
    first, late, new = mail_lines("A", 2), mail_lines("A", 2, start=3), mail_lines("B", 2)
    follower = FileFollower(log_path)
    syslog.lines(*first)
    assert follower.read_batch().lines == first
    logrotate(log_path, copytruncate=False)  # rename to mail.log.1, create an empty mail.log
    syslog.lines(*late)  # syslog has not reopened yet: still the renamed file

    assert follower.read_batch().lines == late
    syslog.reopen()
    syslog.lines(*new)
    lines, notes = read_all(follower)

    assert lines == new
    assert notes == [f"finished rotated file {log_path}.1"]


def test_a_line_half_written_when_the_file_is_renamed_is_read_whole(log_path, syslog):
    follower = FileFollower(log_path)
    syslog.lines("one")
    syslog.write("two, half")
    assert follower.read_batch().lines == ["one"]
    logrotate(log_path, copytruncate=False)
    assert follower.read_batch().lines == []  # the renamed file may still get the rest of the line

    syslog.write(" and the rest\n")
    syslog.reopen()
    syslog.lines("three")

    assert read_all(follower)[0] == ["two, half and the rest", "three"]


def test_a_line_half_written_at_a_copytruncate_rotation_is_handed_out_once_in_two_pieces(log_path, syslog):
    follower = FileFollower(log_path)
    syslog.lines("one")
    syslog.write("two, half")
    assert follower.read_batch().lines == ["one"]
    logrotate(log_path)
    syslog.write(" and the rest\n")  # O_APPEND: the start of the truncated file
    syslog.lines("three")

    lines, notes = read_all(follower)

    assert lines == ["two, half", " and the rest", "three"]
    assert notes == [
        f"{log_path}.1 ended in the middle of a line: its last 9 bytes are a line of their own (the rest of it, if "
        "written, begins the next file)",
        f"finished rotated file {log_path}.1",
    ]


@pytest.mark.parametrize("delaycompress", [True, False])
def test_a_new_file_rotated_before_its_first_line_was_read_is_read_from_its_copy(log_path, syslog, delaycompress):
    follower = FileFollower(log_path)
    syslog.lines("one")
    read_all(follower)
    logrotate(log_path, delaycompress=delaycompress)
    assert read_all(follower)[0] == []  # mail.log is empty: nothing to know it by yet
    syslog.lines("two")
    logrotate(log_path, delaycompress=delaycompress)
    syslog.lines("three")

    lines, notes = read_all(follower)

    newest = f"{log_path}.1" if delaycompress else f"{log_path}.1.gz"
    assert lines == ["two", "three"]
    assert notes == [f"finished rotated file {log_path}.2.gz", f"read rotated file {newest}"]


def test_a_rotated_copy_is_read_as_gzip_when_its_bytes_say_so(log_path, syslog):
    follower = FileFollower(log_path)
    syslog.lines("one")
    read_all(follower)
    syslog.lines("two")
    logrotate(log_path, compress=False)
    rotated = log_path.parent / "mail.log.1"
    rotated.write_bytes(gzip.compress(rotated.read_bytes()))  # compressed, keeping its name
    syslog.lines("three")

    assert read_all(follower)[0] == ["two", "three"]


def test_a_file_rotated_while_being_read_is_read_anew_from_its_copy(log_path, syslog, monkeypatch):
    follower = FileFollower(log_path)
    syslog.lines(*mail_lines("A", 3))
    assert follower.read_batch(max_lines=1).lines == mail_lines("A", 1)
    real_read_from = follow_module._read_from

    def rotated_meanwhile(opened, position, room):
        # logrotate copies and truncates, and syslog writes past the position, after the follower has checked the
        # file's first line and before it reads on from its position
        monkeypatch.setattr(follow_module, "_read_from", real_read_from)
        logrotate(log_path)
        syslog.lines(*mail_lines("B", 5))
        return real_read_from(opened, position, room)

    monkeypatch.setattr(follow_module, "_read_from", rotated_meanwhile)

    assert read_all(follower)[0] == mail_lines("A", 2, start=2) + mail_lines("B", 5)


def test_after_a_truncation_without_a_rotated_copy_it_says_so_and_starts_again_from_the_top(log_path, syslog):
    follower = FileFollower(log_path)
    syslog.lines(*mail_lines("A", 5))
    read_all(follower)
    os.truncate(log_path, 0)
    syslog.lines(*mail_lines("B", 2))

    batch = follower.read_batch()

    assert batch.lines == mail_lines("B", 2)
    assert batch.has_gap
    [note] = batch.notes
    assert note.startswith(f"file truncated ({follower_bytes(mail_lines('A', 5))} bytes read, ")
    assert note.endswith(f"started again from the top of {log_path}")


def test_after_a_restart_it_resumes_at_the_stored_position(log_path, syslog):
    syslog.lines(*mail_lines("A", 100))
    first = FileFollower(log_path).read_batch(max_lines=40)
    stored = json.dumps(first.checkpoint.to_dict())

    restarted = FileFollower(log_path, Checkpoint.from_dict(json.loads(stored)))

    assert first.lines == mail_lines("A", 40)
    assert read_all(restarted)[0] == mail_lines("A", 60, start=41)


def test_after_a_restart_it_finishes_the_file_rotated_while_it_was_stopped(log_path, syslog):
    syslog.lines(*mail_lines("A", 10))
    checkpoint = FileFollower(log_path).read_batch(max_lines=4).checkpoint
    logrotate(log_path)
    syslog.lines(*mail_lines("B", 2))

    lines, notes = read_all(FileFollower(log_path, checkpoint))

    assert lines == mail_lines("A", 6, start=5) + mail_lines("B", 2)
    assert notes == [f"finished rotated file {log_path}.1"]


def test_a_half_written_last_line_waits_until_it_is_complete(log_path, syslog):
    follower = FileFollower(log_path)
    syslog.write("one\ntwo, ha")
    assert follower.read_batch().lines == ["one"]
    assert follower.read_batch().lines == []

    syslog.write("lf\nthree\n")

    assert follower.read_batch().lines == ["two, half", "three"]


def test_a_file_whose_first_line_is_not_complete_is_read_once_it_is(log_path, syslog):
    follower = FileFollower(log_path)
    syslog.write("first, ha")
    assert follower.read_batch().checkpoint.head == ""

    syslog.write("lf\n")
    batch = follower.read_batch()

    assert batch.lines == ["first, half"]
    assert batch.checkpoint.head == head_of(b"first, half\n")


def test_a_line_seen_again_is_never_handed_out_twice(log_path, syslog):
    follower = FileFollower(log_path)
    syslog.lines(*mail_lines("A", 3))
    seen = read_all(follower)[0]
    assert read_all(follower)[0] == []
    logrotate(log_path)  # the lines already read are in mail.log.1 now, and in mail.log.2.gz after the next rotation
    syslog.lines(*mail_lines("B", 1))
    logrotate(log_path)
    syslog.lines(*mail_lines("C", 1))
    logrotate(log_path)
    # logrotate compressing B's file: for a moment it is there twice, mail.log.2 and mail.log.2.gz
    with gzip.open(f"{log_path}.2.gz", "rb") as packed:
        (log_path.parent / "mail.log.2").write_bytes(packed.read())
    syslog.lines(*mail_lines("D", 1))

    seen += read_all(follower)[0]

    assert seen == mail_lines("A", 3) + mail_lines("B", 1) + mail_lines("C", 1) + mail_lines("D", 1)


def test_a_copy_logrotate_has_made_but_not_truncated_yet_is_read_once(log_path, syslog):
    follower = FileFollower(log_path)
    syslog.lines("A1", "A2")
    assert follower.read_batch(max_lines=1).lines == ["A1"]
    logrotate(log_path)
    syslog.lines("B1", "B2")
    # the next copytruncate, half done: mail.log.1 moved to mail.log.2, mail.log copied to mail.log.1, not truncated
    os.rename(f"{log_path}.1", f"{log_path}.2")
    (log_path.parent / "mail.log.1").write_bytes(log_path.read_bytes())
    assert read_all(follower)[0] == ["A2", "B1", "B2"]

    os.truncate(log_path, 0)
    syslog.lines("C1")

    assert read_all(follower) == (["C1"], [f"finished rotated file {log_path}.1"])


def test_it_finishes_a_rotated_copy_that_is_compressed_already(log_path, syslog):
    follower = FileFollower(log_path)
    syslog.lines(*mail_lines("A", 2))
    read_all(follower)
    syslog.lines(*mail_lines("A", 3, start=3))
    logrotate(log_path, delaycompress=False)  # mail.log.1.gz
    syslog.lines(*mail_lines("B", 1))
    assert sorted(path.name for path in log_path.parent.glob("mail.log*")) == ["mail.log", "mail.log.1.gz"]

    lines, notes = read_all(follower)

    assert lines == mail_lines("A", 3, start=3) + mail_lines("B", 1)
    assert notes == [f"finished rotated file {log_path}.1.gz"]


def test_after_two_rotations_between_reads_it_reads_both_rotated_files_in_order(log_path, syslog):
    follower = FileFollower(log_path)
    syslog.lines(*mail_lines("A", 2))
    read_all(follower)
    syslog.lines(*mail_lines("A", 1, start=3))
    logrotate(log_path)
    syslog.lines(*mail_lines("B", 2))
    logrotate(log_path)  # DMS keeps 4: A is mail.log.2.gz, B mail.log.1
    syslog.lines(*mail_lines("C", 1))

    lines, notes = read_all(follower)

    assert lines == mail_lines("A", 1, start=3) + mail_lines("B", 2) + mail_lines("C", 1)
    assert notes == [f"finished rotated file {log_path}.2.gz", f"read rotated file {log_path}.1"]


def test_when_the_rotated_file_is_gone_it_says_what_is_lost_and_what_it_did_not_read(log_path, syslog):
    follower = FileFollower(log_path)
    syslog.lines(*mail_lines("A", 2))
    read_all(follower)
    syslog.lines(*mail_lines("A", 1, start=3))
    logrotate(log_path, rotate=1)
    syslog.lines(*mail_lines("B", 2))
    logrotate(log_path, rotate=1)  # A is deleted, B is mail.log.1: only the most recent copy is kept
    syslog.lines(*mail_lines("C", 1))

    batch = follower.read_batch()

    assert batch.lines == mail_lines("C", 1)
    assert batch.has_gap
    [note] = batch.notes
    read, size_of_b = follower_bytes(mail_lines("A", 2)), follower_bytes(mail_lines("B", 2))
    assert note.startswith(f"file truncated ({read} bytes read, {follower_bytes(mail_lines('C', 1))} now)")
    assert f"lines written to it after byte {read} are lost; started again from the top of {log_path}" in note
    assert f"Rotated copies not read: {log_path}.1 ({size_of_b} bytes); `maillog ingest --file`" in note


def test_it_reads_a_huge_file_in_batches(log_path, syslog):
    lines = mail_lines("A", 60_000)
    syslog.lines(*lines)
    follower = FileFollower(log_path)

    sizes = []
    while batch := follower.read_batch(max_lines=5000).lines:
        sizes.append(len(batch))
        assert batch == lines[: len(batch)]
        lines = lines[len(batch) :]

    assert sizes == [5000] * 12
    assert lines == []


def test_it_finishes_a_huge_rotated_file_in_batches_before_the_new_one(log_path, syslog):
    follower = FileFollower(log_path)
    syslog.lines(*mail_lines("A", 1))
    read_all(follower)
    syslog.lines(*mail_lines("A", 12_000, start=2))
    logrotate(log_path, delaycompress=False)
    syslog.lines(*mail_lines("B", 3))

    batches = [follower.read_batch(max_lines=5000) for _ in range(4)]

    assert [len(batch.lines) for batch in batches] == [5000, 5000, 2003, 0]
    assert sum((batch.lines for batch in batches), []) == mail_lines("A", 12_000, start=2) + mail_lines("B", 3)
    assert batches[1].checkpoint.path == str(log_path)
    assert batches[1].checkpoint.inode == os.stat(f"{log_path}.1.gz").st_ino


def test_a_first_start_at_the_end_reads_only_new_lines(log_path, syslog):
    syslog.lines(*mail_lines("A", 3))
    syslog.write("half")
    follower = FileFollower(log_path, start_at_end=True)

    assert follower.read_batch().lines == []
    syslog.lines(" line", *mail_lines("B", 1))
    assert follower.read_batch().lines == ["half line", *mail_lines("B", 1)]


def test_it_waits_for_a_file_that_does_not_exist_yet_and_reads_it_from_the_top(log_path):
    follower = FileFollower(log_path)
    assert follower.read_batch().notes == (f"{log_path} does not exist: waiting for it",)
    assert follower.read_batch().notes == ()

    log_path.write_text("one\ntwo\n")

    batch = follower.read_batch()
    assert (batch.lines, batch.notes, batch.has_gap) == (["one", "two"], (), False)


def test_a_checkpoint_for_another_file_is_not_used(log_path, tmp_path, syslog):
    syslog.lines("one")
    other = Checkpoint(str(tmp_path / "other.log"), 1, 2, head_of(b"x\n"), 2)

    batch = FileFollower(log_path, other).read_batch()

    assert batch.lines == ["one"]
    assert batch.notes == (f"the stored position was for {tmp_path / 'other.log'}, not {log_path}: starting afresh",)


class RecordingStop(threading.Event):
    """A stop event that notes each wait instead of waiting, and stops the loop after `waits` of them."""

    def __init__(self, waits):
        super().__init__()
        self.waits, self.left = [], waits

    def wait(self, timeout=None):
        self.waits.append(timeout)
        self.left -= 1
        if self.left <= 0:
            self.set()
        return self.is_set()


def test_the_follow_loop_waits_only_when_nothing_new_was_read(log_path, syslog):
    syslog.lines(*mail_lines("A", 12_000))
    batches, stop = [], RecordingStop(waits=3)

    def on_batch(batch):
        batches.append((len(batch.lines), len(stop.waits)))

    follow(FileFollower(log_path), on_batch, stop, poll_interval=0.25)

    assert batches == [(5000, 0), (5000, 0), (2000, 0)]  # three reads in a row, then nothing new
    assert stop.waits == [0.25, 0.25, 0.25]


def test_a_batch_that_could_not_be_stored_is_read_again(log_path, syslog):
    syslog.lines(*mail_lines("A", 3))
    follower = FileFollower(log_path)

    def failing(batch):
        raise RuntimeError("database is down")

    with pytest.raises(RuntimeError):
        follow(follower, failing, threading.Event())

    assert follower.read_batch().lines == mail_lines("A", 3)


def test_the_follow_loop_hands_over_lines_as_they_come_and_stops_promptly(log_path, syslog):
    received, stop = [], threading.Event()

    def wait_for(count):
        deadline = time.monotonic() + 10
        while len(received) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    loop = threading.Thread(
        target=follow, args=(FileFollower(log_path), lambda b: received.extend(b.lines), stop, 0.01)
    )
    loop.start()
    try:
        syslog.lines("line 0")
        wait_for(1)
        for n in range(1, 4):  # rotated faster than it polls, some of them
            syslog.lines(f"line {n}")
            logrotate(log_path)
        wait_for(4)
    finally:
        stop.set()
        loop.join(timeout=2)
    assert not loop.is_alive()
    assert received == ["line 0", "line 1", "line 2", "line 3"]


def test_read_lines_reads_a_whole_archive_told_gzip_by_its_bytes(tmp_path):
    packed, plain = tmp_path / "mail.log.2", tmp_path / "mail.log.3.gz"
    packed.write_bytes(gzip.compress(b"one\n\xfftwo\nlast, no newline"))
    plain.write_bytes(b"one\ntwo\n")

    assert list(read_lines(packed)) == ["one", "\ufffdtwo", "last, no newline"]
    assert list(read_lines(plain)) == ["one", "two"]


def test_read_lines_refuses_a_gzip_file_cut_short(tmp_path):
    cut = tmp_path / "mail.log.2.gz"
    cut.write_bytes(gzip.compress("".join(f"{line}\n" for line in mail_lines("A", 500)).encode())[:-20])

    with pytest.raises(gzip.BadGzipFile, match="ends early"):
        list(read_lines(cut))


def test_read_lines_reports_its_progress_in_bytes_on_disk(tmp_path):
    archive = tmp_path / "mail.log.1"
    archive.write_text("".join(f"{line}\n" for line in mail_lines("A", 10_000)))
    progress = []

    assert len(list(read_lines(archive, on_progress=lambda done, total: progress.append((done, total))))) == 10_000
    size = archive.stat().st_size
    assert progress[-1] == (size, size)
    assert len(progress) == 3 and 0 < progress[0][0] < progress[1][0] < size


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["mail.log", "mail.log.2.gz", "mail.log.1", "mail.log.10.gz", "mail.log.3.gz"],
         ["mail.log.1", "mail.log.2.gz", "mail.log.3.gz", "mail.log.10.gz"]),
        (["mail.log.2", "mail.log.2.gz", "mail.log.0"], ["mail.log.0", "mail.log.2", "mail.log.2.gz"]),
        (["mail.log-20261129.gz", "mail.log-20261206", "mail.log-20261122.gz"],
         ["mail.log-20261206", "mail.log-20261129.gz", "mail.log-20261122.gz"]),
        (["mail.log.old", "mail.log.1.bak", "other.log.1", "mail.logx.1", "mail.log-2026"], []),
    ],
)  # fmt: skip
def test_rotated_copies_are_taken_newest_first(names, expected):
    assert rotated_names("mail.log", names) == expected


def test_a_renamed_copy_wins_over_one_that_only_begins_the_same_way():
    checkpoint = Checkpoint("/log/mail.log", 1, 7, "abc", 10)
    copies = [FileId("/log/mail.log.1", 1, 8, 50, "abc"), FileId("/log/mail.log.2", 1, 7, 50, "abc")]

    assert find_rotated(checkpoint, copies) == 1
    assert find_rotated(checkpoint, copies[:1]) == 0
    assert find_rotated(Checkpoint("/log/mail.log", 1, 9, "", 0), copies) is None


def test_the_head_is_the_first_line_up_to_4_kib():
    assert head_of(b"one\ntwo\n") == head_of(b"one\n")
    assert head_of(b"one, not complete") == ""
    assert head_of(b"x" * 5000) == head_of(b"x" * 4096 + b"\n")


def test_a_copy_logrotate_is_still_compressing_is_waited_for_not_taken_for_lost(log_path, syslog):
    follower = FileFollower(log_path)
    syslog.lines("line 0", "line 1")
    assert read_all(follower)[0] == ["line 0", "line 1"]
    syslog.lines("line 2")
    # The file was rotated twice meanwhile: its copy is being compressed to mail.log.2.gz, half written yet.
    whole = gzip.compress(log_path.read_bytes())
    os.truncate(log_path, 0)
    syslog.lines("line 9")
    (log_path.parent / "mail.log.1").write_bytes(b"line 8\n")
    copy = log_path.parent / "mail.log.2.gz"
    copy.write_bytes(whole[:20])

    batch = follower.read_batch()
    assert (batch.lines, batch.notes, batch.has_gap) == ([], (), False)  # waits: no loss declared

    copy.write_bytes(whole)
    lines, notes = read_all(follower)
    assert lines == ["line 2", "line 8", "line 9"]
    assert not any("lost" in note for note in notes)
