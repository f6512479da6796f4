"""The policy service's counters, in the SQLite file and in Redis alike: an add that would pass one limit adds
nothing anywhere, each counter may take its own amount, a reset clears, the held list keeps its order; the
server's file is checkpointed off its hot path."""

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from deliverability.policy_counters import Count, FileCounters


def test_an_add_that_would_pass_one_limit_adds_nothing_anywhere(counters):
    assert counters.try_add([Count("a", 10), Count("b", 3)], 2) == (True, -1, 0)
    assert counters.try_add([Count("a", 10), Count("b", 3)], 2) == (False, 1, 2)
    assert counters.get(["a", "b", "c"]) == [2, 2, 0]


def test_each_counter_may_take_its_own_amount(counters):
    assert counters.try_add([Count("message", None), Count("ip", 1, 1)], 5)[0]
    assert not counters.try_add([Count("message", None), Count("ip", 1, 1)], 5)[0]
    assert counters.get(["message", "ip"]) == [5, 1]


def test_a_reset_clears_and_scan_finds_one_days_counters(counters):
    counters.try_add([Count("mbx:a@x.example:20261207", None), Count("mbx:b@x.example:20261208", None)], 4)
    assert counters.scan("mbx:", ":20261207") == {"mbx:a@x.example:20261207": 4}
    assert counters.reset(["mbx:a@x.example:20261207"]) == 1
    assert counters.get(["mbx:a@x.example:20261207"]) == [0]


def test_held_mail_is_listed_soonest_first_and_done_leaves_the_list(counters):
    counters.hold_add("BBBBBB1", 200.0, '{"ip": "192.0.2.2"}')
    counters.hold_add("AAAAAA1", 100.0, '{"ip": "192.0.2.1"}')
    assert [queue_id for queue_id, _, _ in counters.holds()] == ["AAAAAA1", "BBBBBB1"]
    assert [queue_id for queue_id, _, _ in counters.holds(150.0)] == ["AAAAAA1"]
    counters.hold_done("AAAAAA1")
    assert counters.hold_get("AAAAAA1") is None and counters.hold_get("BBBBBB1") == '{"ip": "192.0.2.2"}'


def test_the_servers_counter_file_is_checkpointed_by_a_thread_so_its_wal_stays_small(tmp_path):
    # The policy server's hot connection never copies the WAL into the file itself (an fsync stall for every request
    # waiting); its thread does, so the WAL is reused instead of growing with every count, and nothing is lost.
    path = tmp_path / "counters.sqlite3"
    store = FileCounters(path, checkpoint_seconds=0.01)
    try:
        for n in range(3000):
            assert store.try_add([Count(f"mbx:user{n % 500}@x.example:20261207", None), Count("dom:x", None)], 1)[0]
            if n % 100 == 0:
                time.sleep(0.02)  # the thread's turn, as between bursts of mail
        wal = Path(f"{path}-wal").stat().st_size
    finally:
        store.close()
    # Without checkpoints 3,000 commits of two pages each would leave a WAL of over 20 MB.
    assert wal < 4 * 1024 * 1024, wal
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT value FROM counter WHERE key = 'dom:x'").fetchone() == (3000,)


def test_deferred_counts_reach_the_file_at_commit_and_a_rollback_undoes_them_all(tmp_path):
    # The policy server's group commit: its loop's counts wait in one transaction until commit(), once per turn.
    store, other = FileCounters(tmp_path / "c.sqlite3"), FileCounters(tmp_path / "c.sqlite3")
    try:
        store.defer_commits()
        assert store.try_add([Count("a", 10)], 2)[0]
        assert store.try_add([Count("b", 1)], 5) == (False, 0, 0)  # a refusal in the group keeps the others' counts
        assert store.pending and store.get(["a"]) == [2]  # the loop reads its own counts
        assert other.get(["a"]) == [0]  # send_limits, in another process, does not see them yet
        store.commit()
        assert not store.pending and other.get(["a"]) == [2]

        assert store.try_add([Count("a", 10)], 3)[0] and store.try_add([Count("c", None)], 1)[0]
        store.rollback()
        assert store.get(["a", "c"]) == [2, 0] and other.get(["a", "c"]) == [2, 0]
    finally:
        store.close()
        other.close()


def test_only_the_deferring_thread_waits_for_commit(tmp_path):
    store, other = FileCounters(tmp_path / "c.sqlite3"), FileCounters(tmp_path / "c.sqlite3")
    try:
        store.defer_commits()
        worker = threading.Thread(target=store.try_add, args=([Count("from-thread", None)], 4))
        worker.start()
        worker.join()
        assert not store.pending and other.get(["from-thread"]) == [4]
    finally:
        store.close()
        other.close()


def test_another_threads_write_commits_on_its_own_and_the_loops_rollback_leaves_it(tmp_path):
    # The releaser thread marks a held message released while the loop's turn is open: the loop's rollback (a turn
    # that failed) must not bring the message back to be released twice.
    store, other = FileCounters(tmp_path / "c.sqlite3", timeout=10), FileCounters(tmp_path / "c.sqlite3")
    try:
        store.hold_add("AAAAAA1", 100.0, "{}")
        store.defer_commits()
        assert store.try_add([Count("a", None)], 1)[0]  # the loop's turn is open
        releaser = threading.Thread(target=store.hold_done, args=("AAAAAA1",))
        releaser.start()
        time.sleep(0.1)
        store.rollback()
        releaser.join(10)
        assert other.hold_get("AAAAAA1") is None and store.hold_get("AAAAAA1") is None
        assert other.get(["a"]) == [0]
    finally:
        store.close()
        other.close()


def test_the_wal_starts_over_while_the_loop_commits_without_a_pause(tmp_path):
    # At full load the loop commits every few hundred microseconds, so the checkpoint thread never finds the WAL
    # still: the loop's next commit copies what it wrote meanwhile, and the WAL starts over instead of growing.
    path = tmp_path / "c.sqlite3"
    store = FileCounters(path, checkpoint_seconds=0.02)
    sizes = []

    def loop():
        store.defer_commits()
        deadline = time.monotonic() + 2
        n = 0
        while time.monotonic() < deadline:
            for _ in range(4):
                store.try_add([Count(f"mbx:user{n % 2000}@x.example:20261207", None), Count("dom:x", None)], 1)
                n += 1
            store.commit()
            time.sleep(0.0002)  # the rest of the loop's turn: reading and answering
            if n % 400 == 0:
                sizes.append(Path(f"{path}-wal").stat().st_size)

    try:
        worker = threading.Thread(target=loop)
        worker.start()
        worker.join()
    finally:
        store.close()
    # Without the loop's last pass the WAL grew past 40 MB in these two seconds.
    assert max(sizes[len(sizes) // 2 :]) < 8 * 1024 * 1024, max(sizes)


def test_the_counter_file_and_its_wal_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        store = FileCounters(tmp_path / "c.sqlite3")
        store.try_add([Count("mbx:bob@example.com:20261207", None)], 1)
        modes = {path.name: path.stat().st_mode & 0o777 for path in tmp_path.iterdir()}
        store.close()
    finally:
        os.umask(old)
    assert modes["c.sqlite3"] == 0o600 and modes["c.sqlite3-wal"] == 0o600, modes


def test_after_sqlite_rolled_the_turn_back_nothing_more_counts_in_it(tmp_path):
    store, other = FileCounters(tmp_path / "c.sqlite3"), FileCounters(tmp_path / "c.sqlite3")
    try:
        store.defer_commits()
        assert store.try_add([Count("alice", None)], 1)[0]
        store._db().execute("ROLLBACK")  # what SQLite does by itself under some errors (a full disk, I/O)
        with pytest.raises(sqlite3.OperationalError, match="rolled back"):
            store.try_add([Count("carol", None)], 1)
        assert other.get(["alice", "carol"]) == [0, 0]  # carol was not counted on her own, outside the turn
        with pytest.raises(sqlite3.OperationalError):
            store.commit()  # the server then closes the turn's connections unanswered
        assert not store.pending and store.try_add([Count("carol", None)], 1)[0]  # the next turn counts again
    finally:
        store.close()
        other.close()


def test_the_connections_of_threads_that_ended_are_closed(tmp_path):
    store = FileCounters(tmp_path / "c.sqlite3")
    try:
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(40):
            reader = threading.Thread(target=store.get, args=(["a"],))
            reader.start()
            reader.join()
        assert len(os.listdir("/proc/self/fd")) - before < 10
    finally:
        store.close()
