"""Rendered Postfix tables read by the real `postmap`, as Postfix inside DMS reads them."""

import os
import shutil
import subprocess

import pytest

from mail.dms.mail_files import render_files
from mail.dms.snapshot import Account, Alias, Snapshot

HASH = "{SHA512-CRYPT}$6$saltsaltsaltsalt$hash"

SNAPSHOT = Snapshot(
    accounts=(
        Account("me@d.io", HASH),
        Account("bob@d.io", HASH),
        Account("ob@d.io", HASH, is_suspended=True),
        Account("you@e.io", HASH),
    ),
    aliases=(
        Alias("team@e.io", ("you@e.io", "friend@elsewhere.net", "me@d.io")),
        Alias("@d.io", ("me@d.io",)),
        Alias("you@e.io", ("other@x.org", "you@e.io")),
    ),
    send_blocked=("ob@d.io",),
    receive_blocked=("gone@e.io",),
)


@pytest.fixture
def postmap():
    path = shutil.which("postmap")
    if path is None:
        pytest.skip("postmap is not installed (Debian package postfix)")
    return path


def write_files(directory, files):
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        # Postfix waits up to two seconds before reading a table modified in the last second or two.
        os.utime(path, (1_000_000_000, 1_000_000_000))


@pytest.fixture
def config_dir(tmp_path):
    write_files(tmp_path, render_files(SNAPSHOT))
    return tmp_path


def lookup(postmap, key, table):
    result = subprocess.run([postmap, "-q", key, f"texthash:{table}"], capture_output=True, text=True, timeout=30)
    return result.returncode, result.stdout.strip()


@pytest.mark.parametrize(
    ("key", "targets"),
    [
        pytest.param("team@e.io", "you@e.io,friend@elsewhere.net,me@d.io", id="alias with several targets"),
        pytest.param("you@e.io", "other@x.org,you@e.io", id="forward and keep a copy"),
        pytest.param("@d.io", "me@d.io", id="catch-all"),
        pytest.param("bob@d.io", "bob@d.io", id="identity line under a catch-all"),
        pytest.param("ob@d.io", "ob@d.io", id="identity line of a suspended account"),
    ],
)
def test_postmap_finds_the_targets_of_each_virtual_key(postmap, config_dir, key, targets):
    assert lookup(postmap, key, config_dir / "postfix-virtual.cf") == (0, targets)


def test_postmap_finds_nothing_for_an_address_without_a_line(postmap, config_dir):
    assert lookup(postmap, "nobody@e.io", config_dir / "postfix-virtual.cf") == (1, "")


def test_postmap_reads_exactly_the_rendered_virtual_keys(postmap, config_dir):
    result = subprocess.run(
        [postmap, "-s", f"texthash:{config_dir / 'postfix-virtual.cf'}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    pairs = dict(line.split("\t", 1) for line in result.stdout.splitlines())
    assert pairs == {
        "@d.io": "me@d.io",
        "me@d.io": "me@d.io",
        "ob@d.io": "ob@d.io",
        "bob@d.io": "bob@d.io",
        "you@e.io": "other@x.org,you@e.io",
        "team@e.io": "you@e.io,friend@elsewhere.net,me@d.io",
    }


def test_postmap_rejects_the_blocked_addresses(postmap, config_dir):
    assert lookup(postmap, "ob@d.io", config_dir / "postfix-send-access.cf") == (0, "REJECT")
    assert lookup(postmap, "me@d.io", config_dir / "postfix-send-access.cf") == (1, "")
    assert lookup(postmap, "gone@e.io", config_dir / "postfix-receive-access.cf") == (0, "REJECT")


def test_postmap_reads_a_header_only_table_as_empty(postmap, tmp_path):
    write_files(tmp_path, render_files(Snapshot()))
    result = subprocess.run(
        [postmap, "-s", f"texthash:{tmp_path / 'postfix-send-access.cf'}"], capture_output=True, text=True, timeout=30
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
