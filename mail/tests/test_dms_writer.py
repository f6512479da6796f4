"""Tests for mail.dms.writer on the real filesystem: atomic, change-only, locked writes with history."""

import datetime
import hashlib
import json
import multiprocessing
import os
import random
import resource
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest
import time_machine

from mail.dms import writer
from mail.dms.writer import (
    LOCK_NAME,
    MANIFEST_NAME,
    CorruptVersion,
    EmptyContent,
    LockTimeout,
    UnknownVersion,
    UnsafePath,
    WriteError,
    dms_lock,
    list_versions,
    read_files,
    restore_version,
    write_files,
)

ACCOUNTS = "postfix-accounts.cf"
VIRTUAL = "postfix-virtual.cf"
OPENDKIM_KEY = "opendkim/keys/example.com/mail.private"
RSPAMD_CONF = "rspamd/override.d/dkim_signing.conf"


@pytest.fixture
def root(tmp_path):
    return tmp_path / "dms"


@pytest.fixture
def history(tmp_path):
    return tmp_path / "history"


def _sha(content):
    return hashlib.sha256(content).hexdigest()


def _tree(*dirs):
    """Every file and directory under dirs, relative, so "nothing was written" is one comparison."""
    found = set()
    for top in dirs:
        top = Path(top)
        if top.exists():
            found |= {(str(top), str(p.relative_to(top))) for p in top.rglob("*")}
    return found


def _temp_files(*dirs):
    return [p for d in dirs if Path(d).exists() for p in Path(d).rglob(f"{writer.TEMP_PREFIX}*")]


def _manifest(history):
    return json.loads((history / MANIFEST_NAME).read_text())["files"]


class _Pieces:
    """A content producer that yields content a few bytes at a time and counts how often it was run."""

    def __init__(self, content, size=7):
        self.content, self.size, self.calls = content, size, 0

    def __call__(self):
        self.calls += 1
        return (self.content[i : i + self.size] for i in range(0, len(self.content), self.size))


class ProducerFailed(Exception):
    pass


# Writing -------------------------------------------------------------------------------------------------


def test_it_creates_the_root_and_parent_directories_and_writes_every_file(root, history):
    files = {ACCOUNTS: b"a@example.com|{SHA512-CRYPT}$6$x\n", OPENDKIM_KEY: b"key\n", RSPAMD_CONF: b"conf\n"}

    report = write_files(root, files, history_dir=history)

    assert {path: (root / path).read_bytes() for path in files} == files
    assert report.changed == list(files)
    assert report.unchanged == [] and report.removed == []
    assert report.checksums == {path: _sha(content) for path, content in files.items()}
    assert _manifest(history) == report.checksums


def test_it_gives_files_the_mode_the_caller_asks_for_and_0644_otherwise(root, history):
    files = {ACCOUNTS: b"header\n", OPENDKIM_KEY: b"key\n"}

    write_files(root, files, history_dir=history, file_mode=lambda p: 0o600 if p.endswith(".private") else 0o644)

    assert (root / ACCOUNTS).stat().st_mode & 0o777 == 0o644
    assert (root / OPENDKIM_KEY).stat().st_mode & 0o777 == 0o600


def test_it_leaves_a_file_holding_the_same_bytes_untouched(root, history):
    write_files(root, {ACCOUNTS: b"same\n", VIRTUAL: b"old\n"}, history_dir=history)
    before = (root / ACCOUNTS).stat()

    report = write_files(root, {ACCOUNTS: b"same\n", VIRTUAL: b"new\n"}, history_dir=history)

    after = (root / ACCOUNTS).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert report.unchanged == [ACCOUNTS]
    assert report.changed == [VIRTUAL]
    assert list_versions(history, ACCOUNTS) == []


def test_it_corrects_the_mode_of_an_unchanged_file_without_rewriting_it(root, history):
    write_files(root, {ACCOUNTS: b"same\n"}, history_dir=history)
    (root / ACCOUNTS).chmod(0o666)
    inode = (root / ACCOUNTS).stat().st_ino

    report = write_files(root, {ACCOUNTS: b"same\n"}, history_dir=history)

    assert report.unchanged == [ACCOUNTS]
    assert (root / ACCOUNTS).stat().st_mode & 0o777 == 0o644
    assert (root / ACCOUNTS).stat().st_ino == inode


def test_it_replaces_a_changed_file_by_rename_so_readers_never_see_it_half_written(root, history):
    write_files(root, {ACCOUNTS: b"old\n"}, history_dir=history)
    old_inode = (root / ACCOUNTS).stat().st_ino
    with open(root / ACCOUNTS, "rb") as reader_holding_the_old_file:
        write_files(root, {ACCOUNTS: b"new\n"}, history_dir=history)

        assert reader_holding_the_old_file.read() == b"old\n"
    assert (root / ACCOUNTS).read_bytes() == b"new\n"
    assert (root / ACCOUNTS).stat().st_ino != old_inode


def test_it_leaves_no_temp_files_behind(root, history):
    for version in range(3):
        write_files(root, {ACCOUNTS: b"v%d\n" % version, OPENDKIM_KEY: b"k%d\n" % version}, history_dir=history)

    assert _temp_files(root, history) == []


def test_it_stages_every_file_outside_the_dms_directory_on_its_filesystem(root, history, monkeypatch):
    staged_in = {}
    real_mkstemp = writer.tempfile.mkstemp

    def recording_mkstemp(*, prefix, dir):
        fd, name = real_mkstemp(prefix=prefix, dir=dir)
        staged_in.setdefault(Path(dir), []).append(Path(name).name)
        return fd, name

    monkeypatch.setattr(writer.tempfile, "mkstemp", recording_mkstemp)

    write_files(root, {ACCOUNTS: b"a\n", RSPAMD_CONF: b"conf\n", OPENDKIM_KEY: b"key\n"}, history_dir=history)

    real_root = Path(os.path.realpath(root))
    assert staged_in, "nothing was staged"
    assert not any(d.is_relative_to(real_root) for d in staged_in)
    assert history / "staging" in staged_in
    assert all(os.stat(d).st_dev == os.stat(real_root).st_dev for d in staged_in)  # rename stays atomic
    assert _temp_files(root, history) == []


def test_it_stages_in_a_hidden_directory_of_the_root_when_history_is_on_another_filesystem(root, history):
    from mail.dms import journal

    root.mkdir()
    history.mkdir()
    # Another filesystem cannot be mounted here; the choice itself is what matters.
    assert journal.staging_dir(root, history) == history / "staging"
    real_stat = os.stat

    def other_device(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if Path(path) == history:
            return os.stat_result((*result[:2], result.st_dev + 1, *result[3:]))
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(journal.os, "stat", other_device)
        staging = journal.staging_dir(root, history)
        assert staging == root / ".dockspace-tmp-staging"
        write_files(root, {ACCOUNTS: b"a\n"}, history_dir=history)

    assert (root / ACCOUNTS).read_bytes() == b"a\n"
    assert not staging.exists()  # not even an empty directory is left where DMS reads
    with pytest.raises(UnsafePath, match="temp files"):
        write_files(root, {".dockspace-tmp-staging/x": b"x\n"}, history_dir=history)


def test_it_removes_temp_files_left_by_a_killed_writer(root, history):
    write_files(root, {OPENDKIM_KEY: b"key\n"}, history_dir=history)
    stale = [root / ".dockspace-tmp-dead1", root / "opendkim/keys/example.com/.dockspace-tmp-dead2"]
    for path in stale:
        path.write_bytes(b"half")

    write_files(root, {OPENDKIM_KEY: b"key\n"}, history_dir=history)

    assert _temp_files(root, history) == []


# Refusals ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../outside.cf", r"must not contain '\.\.'"),
        ("opendkim/../../outside.cf", r"must not contain '\.\.'"),
        ("/etc/passwd", "must be relative"),
        ("postfix\0-accounts.cf", "NUL"),
        ("", "non-empty"),
        ("opendkim//keys", "empty or '.' parts"),
        ("./postfix-accounts.cf", "empty or '.' parts"),
        (".dockspace-tmp-x", "temp files"),
    ],
)
def test_it_refuses_an_unsafe_path_and_writes_nothing(root, history, tmp_path, path, message):
    root.mkdir()
    (root / ACCOUNTS).write_bytes(b"old\n")
    before = _tree(tmp_path)

    with pytest.raises(UnsafePath, match=message):
        write_files(root, {ACCOUNTS: b"new\n", path: b"x\n"}, history_dir=history)

    assert _tree(tmp_path) == before
    assert (root / ACCOUNTS).read_bytes() == b"old\n"


def test_it_refuses_a_path_through_a_symlinked_directory_that_leaves_the_root(root, history, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "opendkim").symlink_to(outside, target_is_directory=True)
    before = _tree(tmp_path)

    with pytest.raises(UnsafePath, match="outside the DMS config directory"):
        write_files(root, {ACCOUNTS: b"new\n", OPENDKIM_KEY: b"key\n"}, history_dir=history)

    assert _tree(tmp_path) == before
    assert list(outside.iterdir()) == []


def test_it_refuses_a_target_that_is_a_symlink_leaving_the_root(root, history, tmp_path):
    outside = tmp_path / "passwd"
    outside.write_bytes(b"root:x:0:0\n")
    root.mkdir()
    (root / ACCOUNTS).symlink_to(outside)

    with pytest.raises(UnsafePath):
        write_files(root, {ACCOUNTS: b"new\n"}, history_dir=history)

    assert outside.read_bytes() == b"root:x:0:0\n"


def test_it_refuses_zero_bytes_and_writes_nothing(root, history, tmp_path):
    with pytest.raises(EmptyContent, match="postfix-virtual.cf: refusing to write zero bytes"):
        write_files(root, {ACCOUNTS: b"a\n", VIRTUAL: b""}, history_dir=history)

    assert _tree(tmp_path) == set()


def test_its_refusals_are_value_errors_so_callers_can_treat_them_as_bad_input():
    assert issubclass(UnsafePath, ValueError)
    assert issubclass(EmptyContent, ValueError)


# History and restore -------------------------------------------------------------------------------------


def test_it_keeps_the_newest_n_previous_versions_with_their_checksums(root, history):
    contents = [b"version %d\n" % n for n in range(8)]
    for content in contents:
        write_files(root, {ACCOUNTS: content}, history_dir=history, keep=3)

    versions = list_versions(history, ACCOUNTS)

    assert [v.location.read_bytes() for v in versions] == [contents[6], contents[5], contents[4]]
    assert [v.sha256 for v in versions] == [_sha(c) for c in (contents[6], contents[5], contents[4])]
    assert [v.size for v in versions] == [len(contents[6])] * 3
    assert all(v.path == ACCOUNTS for v in versions)
    assert versions[0].stored_at > versions[1].stored_at > versions[2].stored_at
    assert all(v.location.parent == history / ACCOUNTS for v in versions)
    assert all(v.location.name.endswith("-" + v.sha256[:12]) for v in versions)
    assert len(list((history / ACCOUNTS).iterdir())) == 3


def test_it_names_history_by_path_with_slashes_replaced_and_keeps_copies_private(root, history):
    write_files(root, {OPENDKIM_KEY: b"old key\n"}, history_dir=history)
    write_files(root, {OPENDKIM_KEY: b"new key\n"}, history_dir=history)

    (version,) = list_versions(history, OPENDKIM_KEY)

    assert version.location.parent == history / "opendkim__keys__example.com__mail.private"
    assert version.location.stat().st_mode & 0o777 == 0o600


def test_it_stamps_versions_in_utc_and_keeps_them_ordered_when_the_clock_stands_still(root, history):
    moment = datetime.datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=datetime.UTC)
    with time_machine.travel(moment, tick=False):
        for content in (b"one\n", b"two\n", b"three\n"):
            write_files(root, {ACCOUNTS: content}, history_dir=history)

    versions = list_versions(history, ACCOUNTS)

    assert [v.location.read_bytes() for v in versions] == [b"two\n", b"one\n"]
    assert versions[1].stored_at == moment
    assert versions[0].stored_at == moment + datetime.timedelta(microseconds=1)


def test_restore_puts_an_old_version_back_and_keeps_the_current_one(root, history):
    for content in (b"first\n", b"second\n", b"third\n"):
        write_files(root, {ACCOUNTS: content}, history_dir=history)
    first = _sha(b"first\n")

    report = restore_version(root, history, ACCOUNTS, first[:8])

    assert (root / ACCOUNTS).read_bytes() == b"first\n"
    assert report.changed == [ACCOUNTS]
    assert report.checksums == {ACCOUNTS: first}
    assert list_versions(history, ACCOUNTS)[0].location.read_bytes() == b"third\n"
    assert _manifest(history)[ACCOUNTS] == first
    assert _temp_files(root, history) == []


def test_restore_keeps_the_mode_the_file_has(root, history):
    write_files(root, {OPENDKIM_KEY: b"old\n"}, history_dir=history, file_mode=lambda p: 0o600)
    write_files(root, {OPENDKIM_KEY: b"new\n"}, history_dir=history, file_mode=lambda p: 0o600)

    restore_version(root, history, OPENDKIM_KEY, _sha(b"old\n")[:12])

    assert (root / OPENDKIM_KEY).read_bytes() == b"old\n"
    assert (root / OPENDKIM_KEY).stat().st_mode & 0o777 == 0o600


def test_restore_refuses_a_corrupted_copy_and_leaves_the_file_alone(root, history):
    write_files(root, {ACCOUNTS: b"good old\n"}, history_dir=history)
    write_files(root, {ACCOUNTS: b"current\n"}, history_dir=history)
    (version,) = list_versions(history, ACCOUNTS)
    version.location.write_bytes(b"bit rot\n")

    with pytest.raises(CorruptVersion, match="does not match its checksum"):
        restore_version(root, history, ACCOUNTS, _sha(b"bit rot\n")[:8])

    assert (root / ACCOUNTS).read_bytes() == b"current\n"


@pytest.mark.parametrize("prefix", ["0000000000", "xyz", "ab"])
def test_restore_refuses_a_prefix_that_names_no_version(root, history, prefix):
    write_files(root, {ACCOUNTS: b"old\n"}, history_dir=history)
    write_files(root, {ACCOUNTS: b"new\n"}, history_dir=history)

    with pytest.raises(UnknownVersion):
        restore_version(root, history, ACCOUNTS, prefix)

    assert (root / ACCOUNTS).read_bytes() == b"new\n"


# Managed files that disappear ----------------------------------------------------------------------------


def test_it_removes_a_managed_file_no_longer_passed_and_keeps_its_last_version(root, history):
    write_files(root, {ACCOUNTS: b"a\n", OPENDKIM_KEY: b"key\n", RSPAMD_CONF: b"conf\n"}, history_dir=history)

    report = write_files(root, {ACCOUNTS: b"a\n", RSPAMD_CONF: b"conf\n"}, history_dir=history)

    assert report.removed == [OPENDKIM_KEY]
    assert not (root / "opendkim").exists()  # its emptied directories go too
    assert [v.location.read_bytes() for v in list_versions(history, OPENDKIM_KEY)] == [b"key\n"]
    assert set(_manifest(history)) == {ACCOUNTS, RSPAMD_CONF}


def test_it_never_removes_a_top_level_cf_file_or_a_file_it_did_not_write(root, history):
    root.mkdir()
    (root / "user-patches.sh").write_bytes(b"#!/bin/sh\n")
    write_files(root, {ACCOUNTS: b"a\n", VIRTUAL: b"v\n"}, history_dir=history)

    report = write_files(root, {ACCOUNTS: b"a\n"}, history_dir=history)

    assert report.removed == []
    assert (root / VIRTUAL).read_bytes() == b"v\n"
    assert (root / "user-patches.sh").read_bytes() == b"#!/bin/sh\n"


def test_it_never_removes_a_top_level_file_it_wrote_once(root, history):
    # A file left alone (an operator's own user-patches.sh) is not passed: it must not be taken for a stale one.
    write_files(root, {ACCOUNTS: b"a\n", "user-patches.sh": b"# ours\n", OPENDKIM_KEY: b"key\n"}, history_dir=history)

    report = write_files(root, {ACCOUNTS: b"a\n"}, history_dir=history)

    assert report.removed == [OPENDKIM_KEY]  # the positive control: a file under a directory goes
    assert (root / "user-patches.sh").read_bytes() == b"# ours\n"


def test_it_starts_over_when_the_manifest_is_unreadable(root, history):
    history.mkdir()
    (history / MANIFEST_NAME).write_bytes(b"{not json")

    report = write_files(root, {ACCOUNTS: b"a\n"}, history_dir=history)

    assert report.changed == [ACCOUNTS]
    assert _manifest(history) == {ACCOUNTS: _sha(b"a\n")}
    assert [p.read_bytes() for p in history.glob(f"{MANIFEST_NAME}.unreadable-*")] == [b"{not json"]


# Dry run -------------------------------------------------------------------------------------------------


def test_a_dry_run_writes_nothing_and_returns_unified_diffs(root, history, tmp_path):
    write_files(root, {ACCOUNTS: b"a@x|h\nb@x|h\n", OPENDKIM_KEY: b"gone\n"}, history_dir=history)
    before = _tree(tmp_path)
    mtime = (root / ACCOUNTS).stat().st_mtime_ns

    report = write_files(root, {ACCOUNTS: b"a@x|h\nc@x|h\n", VIRTUAL: b"@x a@x\n"}, history_dir=history, dry_run=True)

    assert _tree(tmp_path) == before
    assert (root / ACCOUNTS).stat().st_mtime_ns == mtime
    assert report.changed == [ACCOUNTS, VIRTUAL]
    assert report.removed == [OPENDKIM_KEY]
    assert report.checksums[ACCOUNTS] == _sha(b"a@x|h\nc@x|h\n")
    assert report.diffs == {
        ACCOUNTS: ("--- a/postfix-accounts.cf\n+++ b/postfix-accounts.cf\n@@ -1,2 +1,2 @@\n a@x|h\n-b@x|h\n+c@x|h\n"),
        VIRTUAL: "--- /dev/null\n+++ b/postfix-virtual.cf\n@@ -0,0 +1 @@\n+@x a@x\n",
        OPENDKIM_KEY: f"--- a/{OPENDKIM_KEY}\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone\n",
    }


def test_a_dry_run_on_a_fresh_directory_creates_nothing(root, history, tmp_path):
    report = write_files(root, {ACCOUNTS: b"a\n"}, history_dir=history, dry_run=True)

    assert report.changed == [ACCOUNTS]
    assert _tree(tmp_path) == set()


def test_a_dry_run_does_not_show_the_contents_of_files_that_are_not_world_readable(root, history):
    report = write_files(
        root,
        {"postfix-sasl-password.cf": b"@x user:hunter2\n"},
        history_dir=history,
        dry_run=True,
        file_mode=lambda p: 0o600,
    )

    diff = report.diffs["postfix-sasl-password.cf"]
    assert "hunter2" not in diff
    assert "contents not shown" in diff


def test_a_dry_run_marks_a_missing_final_newline(root, history):
    write_files(root, {ACCOUNTS: b"a\nb"}, history_dir=history)

    report = write_files(root, {ACCOUNTS: b"a\nb\n"}, history_dir=history, dry_run=True)

    assert "-b\n\\ No newline at end of file\n+b\n" in report.diffs[ACCOUNTS]


# Streamed content ----------------------------------------------------------------------------------------


def _mode_and_bytes(root):
    return {
        str(p.relative_to(root)): (p.stat().st_mode & 0o777, p.read_bytes()) for p in root.rglob("*") if p.is_file()
    }


def test_a_producer_of_small_chunks_writes_and_keeps_history_exactly_as_bytes_do(tmp_path):
    rounds = [
        {ACCOUNTS: b"a@example.com|{SHA512-CRYPT}$6$x\n" * 40, OPENDKIM_KEY: b"key one\n", RSPAMD_CONF: b"conf\n"},
        {ACCOUNTS: b"b@example.com|{SHA512-CRYPT}$6$y\n" * 40, OPENDKIM_KEY: b"key two\n", RSPAMD_CONF: b"conf\n"},
    ]
    private = {"file_mode": lambda p: 0o600 if p.endswith(".private") else 0o644}
    reports = {"bytes": [], "producer": []}
    for files in rounds:
        producers = {path: _Pieces(content) for path, content in files.items()}
        reports["bytes"].append(write_files(tmp_path / "b", files, history_dir=tmp_path / "bh", **private))
        reports["producer"].append(write_files(tmp_path / "p", producers, history_dir=tmp_path / "ph", **private))
        assert [producer.calls for producer in producers.values()] == [1, 1, 1]

    assert _mode_and_bytes(tmp_path / "p") == _mode_and_bytes(tmp_path / "b")
    assert reports["producer"] == reports["bytes"]
    assert reports["producer"][1].changed == [ACCOUNTS, OPENDKIM_KEY]
    assert reports["producer"][1].unchanged == [RSPAMD_CONF]
    assert _manifest(tmp_path / "ph") == _manifest(tmp_path / "bh")
    for path in (ACCOUNTS, OPENDKIM_KEY):
        (kept,) = list_versions(tmp_path / "ph", path)
        assert (kept.location.read_bytes(), kept.sha256) == (rounds[0][path], _sha(rounds[0][path]))
        assert kept.location.name.endswith("-" + _sha(rounds[0][path])[:12])
    assert _temp_files(tmp_path) == []


def test_an_unchanged_producer_leaves_the_file_untouched_and_no_temp_files(root, history):
    write_files(root, {ACCOUNTS: b"same\n" * 100}, history_dir=history)
    (root / ACCOUNTS).chmod(0o666)
    before = (root / ACCOUNTS).stat()

    report = write_files(root, {ACCOUNTS: _Pieces(b"same\n" * 100)}, history_dir=history)

    after = (root / ACCOUNTS).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert after.st_mode & 0o777 == 0o644
    assert report.unchanged == [ACCOUNTS] and report.changed == []
    assert report.checksums == {ACCOUNTS: _sha(b"same\n" * 100)}
    assert list_versions(history, ACCOUNTS) == []
    assert _temp_files(root, history) == []


@pytest.mark.parametrize("producer", [lambda: iter(()), lambda: [b"", b""]], ids=["nothing", "empty-chunks"])
def test_an_empty_producer_fails_its_file_and_keeps_the_old_bytes(root, history, producer):
    write_files(root, {VIRTUAL: b"old virtual\n", ACCOUNTS: b"old accounts\n"}, history_dir=history)

    with pytest.raises(EmptyContent, match="postfix-accounts.cf: refusing to write zero bytes"):
        write_files(root, {VIRTUAL: b"new virtual\n", ACCOUNTS: producer}, history_dir=history)

    assert (root / ACCOUNTS).read_bytes() == b"old accounts\n"
    assert (root / VIRTUAL).read_bytes() == b"old virtual\n"  # the set is written whole or not at all
    assert _temp_files(root, history) == []
    assert list_versions(history, ACCOUNTS) == list_versions(history, VIRTUAL) == []
    assert _manifest(history) == {VIRTUAL: _sha(b"old virtual\n"), ACCOUNTS: _sha(b"old accounts\n")}


def test_an_empty_producer_creates_no_file_where_there_was_none(root, history):
    with pytest.raises(EmptyContent):
        write_files(root, {ACCOUNTS: lambda: []}, history_dir=history)

    assert not (root / ACCOUNTS).exists()
    assert _temp_files(root, history) == []


@pytest.mark.parametrize(
    "error",
    [ProducerFailed("the database went away"), ConnectionResetError("reset by peer")],
    ids=["exception", "os-error-is-not-disguised-as-write-error"],
)
def test_a_producer_that_raises_midway_keeps_the_old_file_and_its_error_propagates_unchanged(root, history, error):
    write_files(root, {ACCOUNTS: b"old accounts\n"}, history_dir=history)
    temp_files_while_producing = []

    def failing():
        for _ in range(3):
            yield b"y" * writer.CHUNK_SIZE  # larger than the write buffer: bytes really reach the temp file
        temp_files_while_producing.extend(_temp_files(root, history))
        assert _temp_files(root) == []  # staged outside the DMS directory
        raise error

    with pytest.raises(type(error), match=str(error)) as raised:
        write_files(root, {ACCOUNTS: failing}, history_dir=history)

    assert raised.value is error
    assert temp_files_while_producing != []
    assert (root / ACCOUNTS).read_bytes() == b"old accounts\n"
    assert _temp_files(root, history) == []
    assert list_versions(history, ACCOUNTS) == []
    assert _manifest(history) == {ACCOUNTS: _sha(b"old accounts\n")}


def test_a_producer_yielding_text_is_refused_and_keeps_the_old_file(root, history):
    write_files(root, {ACCOUNTS: b"old\n"}, history_dir=history)

    with pytest.raises(TypeError, match="postfix-accounts.cf: a content producer must yield bytes, not str"):
        write_files(root, {ACCOUNTS: lambda: [b"a\n", "b\n"]}, history_dir=history)

    assert (root / ACCOUNTS).read_bytes() == b"old\n"
    assert _temp_files(root, history) == []


def test_a_dry_run_with_producers_reports_and_diffs_exactly_as_with_bytes(root, history, tmp_path):
    secret = "postfix-sasl-password.cf"
    write_files(
        root,
        {ACCOUNTS: b"a@x|h1\nb@x|h1\n", VIRTUAL: b"@x a@x\n", secret: b"@x user:old\n", OPENDKIM_KEY: b"gone\n"},
        history_dir=history,
    )
    new = {ACCOUNTS: b"a@x|h2\nc@x|h1\n", VIRTUAL: b"@x a@x\n", secret: b"@x user:hunter2\n", RSPAMD_CONF: b"c\n"}
    options = {
        "history_dir": history,
        "dry_run": True,
        "file_mode": lambda p: 0o600 if p == secret else 0o644,
        "redact": lambda path, line: line.replace("|h1", "|<hash>").replace("|h2", "|<hash>"),
    }
    before = _tree(tmp_path)
    producers = {path: _Pieces(content, size=3) for path, content in new.items()}

    streamed = write_files(root, producers, **options)

    assert streamed == write_files(root, new, **options)
    assert _tree(tmp_path) == before
    assert streamed.unchanged == [VIRTUAL]
    assert streamed.changed == [ACCOUNTS, secret, RSPAMD_CONF]
    assert streamed.removed == [OPENDKIM_KEY]
    assert "-b@x|<hash>\n+c@x|<hash>\n" in streamed.diffs[ACCOUNTS]
    assert "hunter2" not in streamed.diffs[secret] and "contents not shown" in streamed.diffs[secret]
    # Hashing alone decides; only a changed file that is shown is read a second time, to diff it.
    assert {path: producer.calls for path, producer in producers.items()} == {
        ACCOUNTS: 2,
        VIRTUAL: 1,
        secret: 1,
        RSPAMD_CONF: 2,
    }


def _generated_lines(chunks, marker):
    """Accounts-like lines, built one chunk of about CHUNK_SIZE at a time as a renderer would."""

    def produce():
        for number in range(chunks):
            line = b"user%07d@example.com|{SHA512-CRYPT}$6$%s\n" % (number, marker)
            yield line * (writer.CHUNK_SIZE // len(line))

    return produce


def test_replacing_a_large_file_from_a_producer_uses_memory_independent_of_its_size(root, history):
    old, new = _generated_lines(200, b"old"), _generated_lines(200, b"new")
    size = sum(len(chunk) for chunk in new())
    write_files(root, {ACCOUNTS: old}, history_dir=history, keep=1)

    tracemalloc.start()
    try:
        report = write_files(root, {ACCOUNTS: new}, history_dir=history, keep=1)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert report.changed == [ACCOUNTS]
    assert (root / ACCOUNTS).stat().st_size == size
    (kept,) = list_versions(history, ACCOUNTS)
    assert kept.size == size > 190 * 2**20
    assert kept.sha256 == hashlib.sha256(b"".join(old())).hexdigest()
    assert peak < 4 * writer.CHUNK_SIZE, f"peak {peak / 2**20:.1f} MiB while writing a {size / 2**20:.0f} MiB file"


# Failures ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_producer", [False, True], ids=["bytes", "producer"])
def test_a_disk_full_midway_keeps_every_file_old(root, history, as_producer):
    big = b"x" * 10_000
    write_files(root, {VIRTUAL: b"old virtual\n", ACCOUNTS: b"old accounts\n"}, history_dir=history)
    # A file-size limit makes write() fail with EFBIG even for root, like a full disk would.
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(WriteError, match="postfix-accounts.cf: File too large") as raised:
            new = {VIRTUAL: b"new virtual\n", ACCOUNTS: _Pieces(big, size=1000) if as_producer else big}
            write_files(root, new, history_dir=history)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)

    assert "Traceback" not in str(raised.value)
    assert (root / VIRTUAL).read_bytes() == b"old virtual\n"
    assert (root / ACCOUNTS).read_bytes() == b"old accounts\n"
    assert _temp_files(root, history) == []
    assert list_versions(history, ACCOUNTS) == list_versions(history, VIRTUAL) == []
    assert _manifest(history) == {VIRTUAL: _sha(b"old virtual\n"), ACCOUNTS: _sha(b"old accounts\n")}


def test_a_parent_that_is_a_file_raises_write_error_and_leaves_it_intact(root, history):
    write_files(root, {ACCOUNTS: b"old\n"}, history_dir=history)
    (root / "opendkim").write_bytes(b"not a directory\n")

    with pytest.raises(WriteError, match=f"{OPENDKIM_KEY}: "):
        write_files(root, {ACCOUNTS: b"new\n", OPENDKIM_KEY: b"key\n"}, history_dir=history)

    assert (root / ACCOUNTS).read_bytes() == b"old\n"  # nothing of the set is replaced
    assert (root / "opendkim").read_bytes() == b"not a directory\n"
    assert _temp_files(root, history) == []


def test_a_target_that_is_a_directory_raises_write_error(root, history):
    (root / VIRTUAL).mkdir(parents=True)

    with pytest.raises(WriteError, match="postfix-virtual.cf: Is a directory"):
        write_files(root, {VIRTUAL: b"v\n"}, history_dir=history)

    assert (root / VIRTUAL).is_dir()
    assert _temp_files(root, history) == []


def _make_unwritable(directory):
    """chmod 0500 stops an ordinary user; root (CI) ignores it, but not the immutable attribute."""
    directory.chmod(0o500)
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(directory)], check=True)

    def undo():
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        directory.chmod(0o700)

    return undo


def test_an_unwritable_directory_raises_write_error_and_keeps_the_old_file(root, history):
    write_files(root, {"opendkim/KeyTable": b"old\n"}, history_dir=history)
    undo = _make_unwritable(root / "opendkim")
    try:
        with pytest.raises(WriteError, match="opendkim/KeyTable: (Permission denied|Operation not permitted)"):
            write_files(root, {"opendkim/KeyTable": b"new\n"}, history_dir=history)
    finally:
        undo()

    assert (root / "opendkim/KeyTable").read_bytes() == b"old\n"
    assert _temp_files(root, history) == []


# Reading -------------------------------------------------------------------------------------------------


def test_read_files_returns_bytes_on_disk_and_none_for_missing_files(root, history):
    write_files(root, {ACCOUNTS: b"a\n"}, history_dir=history)

    assert read_files(root, [ACCOUNTS, VIRTUAL]) == {ACCOUNTS: b"a\n", VIRTUAL: None}


def test_read_files_refuses_paths_outside_the_root(root):
    with pytest.raises(UnsafePath):
        read_files(root, ["../etc/passwd"])


# Locking -------------------------------------------------------------------------------------------------


def _append_markers_under_lock(lock_path, log_path, name, start, rounds):
    start.wait()
    for _ in range(rounds):
        with dms_lock(lock_path, timeout=20):
            for marker in ("begin", "middle", "end"):
                with open(log_path, "a") as log:
                    log.write(f"{name} {marker}\n")


def test_two_processes_never_hold_the_lock_at_the_same_time(tmp_path):
    context = multiprocessing.get_context("fork")
    lock_path, log_path, rounds = tmp_path / "history" / LOCK_NAME, tmp_path / "log", 150
    start = context.Barrier(2)
    workers = [
        context.Process(target=_append_markers_under_lock, args=(lock_path, log_path, name, start, rounds))
        for name in ("one", "two")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)

    assert [worker.exitcode for worker in workers] == [0, 0]
    lines = log_path.read_text().splitlines()
    assert len(lines) == 2 * 3 * rounds
    sections = [lines[i : i + 3] for i in range(0, len(lines), 3)]
    assert all(len({line.split()[0] for line in section}) == 1 for section in sections)
    assert all([line.split()[1] for line in section] == ["begin", "middle", "end"] for section in sections)


def test_the_lock_times_out_with_a_clear_message(tmp_path):
    lock_path = tmp_path / LOCK_NAME
    with (
        dms_lock(lock_path),
        pytest.raises(LockTimeout, match="another Dockspace process"),
        dms_lock(lock_path, timeout=0.1),
    ):
        pass

    with dms_lock(lock_path, timeout=0.1):
        pass  # released on exit


def test_write_files_waits_for_the_lock_and_writes_nothing_without_it(root, history):
    with dms_lock(history / LOCK_NAME), pytest.raises(LockTimeout):
        write_files(root, {ACCOUNTS: b"a\n"}, history_dir=history, lock_timeout=0.1)

    assert not root.exists()


# Crash safety --------------------------------------------------------------------------------------------

_REWRITER = textwrap.dedent(
    """
    import sys
    from mail.dms.writer import write_files

    root, history = sys.argv[1], sys.argv[2]
    contents = [bytes.fromhex(sys.argv[3]) * 2**20, bytes.fromhex(sys.argv[4]) * 2**20]
    round = 0
    while True:
        write_files(root, {"postfix-accounts.cf": contents[round % 2]}, history_dir=history, keep=2)
        if round == 0:
            print("ready", flush=True)
        round += 1
    """
)


def test_a_writer_killed_at_any_moment_leaves_the_old_or_the_new_file_whole(root, history):
    old, new = b"old!" * 2**20, b"new!" * 2**20  # 4 MiB each, same length: a mix or a cut is visible
    write_files(root, {ACCOUNTS: old}, history_dir=history, keep=2)
    project = Path(writer.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(project)}
    chance = random.Random()
    killed_mid_write = 0

    for _ in range(30):
        child = subprocess.Popen(
            [sys.executable, "-c", _REWRITER, str(root), str(history), b"new!".hex(), b"old!".hex()],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert child.stdout.readline() == b"ready\n"
        # This sleep picks the moment of the kill; it does not wait for anything to happen.
        time.sleep(chance.uniform(0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()

        assert (root / ACCOUNTS).read_bytes() in (old, new)
        assert _manifest(history)[ACCOUNTS] in (_sha(old), _sha(new))
        assert _temp_files(root) == []  # never where DMS reads
        killed_mid_write += bool(_temp_files(history))

    assert killed_mid_write > 0, "no kill landed inside a write; the test proved nothing"
    assert all(v.sha256.startswith(v.location.name[-12:]) for v in list_versions(history, ACCOUNTS))
    write_files(root, {ACCOUNTS: old}, history_dir=history, keep=2)
    assert _temp_files(root, history) == []


# Committing the set as one -------------------------------------------------------------------------------

_SET_REWRITER = textwrap.dedent(
    """
    import os, signal, sys
    from mail.dms import journal
    from mail.dms.writer import write_files

    root, history, mode = sys.argv[1], sys.argv[2], sys.argv[3]

    def files(name):
        # A consistent pair, about 1 MiB each: the aliases name only mailboxes of the same set.
        boxes = [f"{name}{i:05d}@example.com" for i in range(20000)]
        accounts = "".join(f"{box}|{{SHA512-CRYPT}}$6$salt$hash\\n" for box in boxes)
        virtual = "".join(f"alias{i:05d}@example.com {box}\\n" for i, box in enumerate(boxes))
        return {"postfix-accounts.cf": accounts.encode(), "postfix-virtual.cf": virtual.encode()}

    sets = [files("a"), files("b")]
    if mode == "die-after-first-rename":
        real_replace, renamed = os.replace, []

        def replace_then_die(source, target):
            real_replace(source, target)
            if str(target).startswith(root):
                renamed.append(target)
                os.kill(os.getpid(), signal.SIGKILL)

        journal.os.replace = replace_then_die
        write_files(root, sets[1], history_dir=history, keep=2)
    round = 0
    while True:
        write_files(root, sets[round % 2], history_dir=history, keep=2)
        if round == 0:
            print("ready", flush=True)
        round += 1
    """
)


def _set_of(root):
    """Which set ('a' or 'b') each file holds, checking it is whole; accounts and virtual must agree."""
    accounts = (root / ACCOUNTS).read_text().splitlines()
    virtual = (root / VIRTUAL).read_text().splitlines()
    assert len(accounts) == len(virtual) == 20000, "a file was cut"
    account_set = {line[0] for line in accounts}
    virtual_set = {line.split(" ")[1][0] for line in virtual}
    assert len(account_set) == len(virtual_set) == 1, "a file mixes two versions"
    return account_set.pop(), virtual_set.pop()


def _virtual_names_only_known_mailboxes(root):
    mailboxes = {line.split("|")[0] for line in (root / ACCOUNTS).read_text().splitlines()}
    return all(line.split(" ")[1] in mailboxes for line in (root / VIRTUAL).read_text().splitlines())


def _run_set_rewriter(root, history, mode):
    project = Path(writer.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.Popen(
        [sys.executable, "-c", _SET_REWRITER, str(root), str(history), mode], stdout=subprocess.PIPE, env=env
    )


def test_a_writer_killed_between_two_renames_is_rolled_forward_by_the_next_write(root, history):
    first = _run_set_rewriter(root, history, "loop")
    assert first.stdout.readline() == b"ready\n"
    first.send_signal(signal.SIGKILL)
    first.wait()
    first.stdout.close()
    writer.roll_forward(history)
    before = _set_of(root)
    assert before[0] == before[1]

    child = _run_set_rewriter(root, history, "die-after-first-rename")
    child.wait()
    child.stdout.close()

    assert child.returncode == -signal.SIGKILL
    assert (history / writer.JOURNAL_NAME).exists()
    accounts_set, virtual_set = _set_of(root)
    assert accounts_set != virtual_set, "the kill did not land between the renames; the test proved nothing"
    assert _temp_files(root) == []  # staged files wait in the history directory, never where DMS reads

    assert writer.roll_forward(history) is True

    accounts_set, virtual_set = _set_of(root)
    assert accounts_set == virtual_set
    assert _virtual_names_only_known_mailboxes(root)
    assert not (history / writer.JOURNAL_NAME).exists()
    assert _temp_files(root, history) == []
    assert _manifest(history) == {p: _sha((root / p).read_bytes()) for p in (ACCOUNTS, VIRTUAL)}
    assert writer.roll_forward(history) is False


def test_a_set_writer_killed_at_any_moment_leaves_a_consistent_set_once_rolled_forward(root, history):
    chance = random.Random()
    landed = {"staging": 0, "renaming": 0}

    for _ in range(25):
        child = _run_set_rewriter(root, history, "loop")
        assert child.stdout.readline() == b"ready\n"
        # This sleep picks the moment of the kill; it does not wait for anything to happen.
        time.sleep(chance.uniform(0, 0.3))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()

        assert _temp_files(root) == []
        _set_of(root)  # each file whole
        landed["staging"] += bool(_temp_files(history))
        landed["renaming"] += (history / writer.JOURNAL_NAME).exists()

        # The next write rolls the journal forward before anything else.
        write_files(root, {"dovecot-quotas.cf": b"# header\n"}, history_dir=history, keep=2)

        accounts_set, virtual_set = _set_of(root)
        assert accounts_set == virtual_set
        assert _virtual_names_only_known_mailboxes(root)
        assert _temp_files(root, history) == []

    assert landed["staging"] > 0, f"no kill landed inside a write; the test proved nothing ({landed})"
