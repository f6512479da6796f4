"""The policy service's counters (recipients per mailbox, domain and sending IP, per day or hour): in Redis when
REDIS_URL is set, so several policy servers count together; else in an SQLite file in the data directory, which a
single server writes through at every count, so a restart or a kill -9 keeps the day's figures. The same store is
read and reset by `manage.py send_limits`.

`try_add` is the one write of the hot path: it adds a message's recipients to every counter it names only if none
would pass its limit, atomically (a Lua script in Redis; an IMMEDIATE transaction in SQLite)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dockspace.private_files import private_file_create

logger = logging.getLogger("dockspace.policy")

WAL_SIZE_LIMIT = 4 * 1024 * 1024

# Counters live two days (a window is a UTC day or hour): yesterday's stay readable for a while.
TTL_SECONDS = 2 * 86400


@dataclass(frozen=True, slots=True)
class Count:
    key: str
    limit: int | None  # None: counted, never refused
    amount: int | None = None  # None: try_add's amount


_TRY_ADD = """
local n = #KEYS
local ttl = tonumber(ARGV[1])
local values = redis.call('MGET', unpack(KEYS))
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + i])
  local amount = tonumber(ARGV[1 + n + i])
  local used = tonumber(values[i]) or 0
  if limit >= 0 and used + amount > limit then
    return {0, i, used}
  end
end
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, tonumber(ARGV[1 + n + i]))
  redis.call('EXPIRE', key, ttl)
end
return {1, 0, 0}
"""


class RedisCounters:
    """Counters shared by every policy server using this Redis database."""

    prefix = "dockspace:policy:"

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self.client.register_script(_TRY_ADD)

    def get(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        values = self.client.mget([self.prefix + key for key in keys])
        return [int(value or 0) for value in values]

    # Each script call is atomic in Redis: there is nothing to hold back (FileCounters' group commit).
    pending = False
    writes = 0

    def defer_commits(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def try_add(self, counts: Sequence[Count], amount: int, ttl: int = TTL_SECONDS) -> tuple[bool, int, int]:
        """(added, index of the full counter, its value): nothing is added when one would pass its limit."""
        if not counts:
            return True, -1, 0
        limits = [-1 if count.limit is None else count.limit for count in counts]
        amounts = [amount if count.amount is None else count.amount for count in counts]
        result = self._script(
            keys=[self.prefix + count.key for count in counts], args=[ttl, *limits, *amounts], client=self.client
        )
        added, index, used = (int(value) for value in result)
        return bool(added), index - 1, used

    def reset(self, keys: Sequence[str]) -> int:
        return int(self.client.delete(*[self.prefix + key for key in keys])) if keys else 0

    def scan(self, prefix: str, suffix: str) -> dict[str, int]:
        """{key: value} of the counters whose key starts with `prefix` and ends with `suffix` (e.g. one day's)."""
        keys = [key.decode() for key in self.client.scan_iter(f"{self.prefix}{prefix}*{suffix}", count=1000)]
        values = self.client.mget(keys) if keys else []
        return {key[len(self.prefix) :]: int(value or 0) for key, value in zip(keys, values, strict=True)}

    # Mail held for warmup room: queue id -> (release time, what it is), soonest first.
    def hold_add(self, queue_id: str, release_at: float, payload: str) -> None:
        pipe = self.client.pipeline()
        pipe.zadd(self.prefix + "held", {queue_id: release_at})
        pipe.hset(self.prefix + "held-info", queue_id, payload)
        pipe.execute()

    def hold_get(self, queue_id: str) -> str | None:
        value = self.client.hget(self.prefix + "held-info", queue_id)
        return value.decode() if value is not None else None

    def holds(self, due_by: float | None = None) -> list[tuple[str, float, str]]:
        """(queue id, release time, payload) of the held mail, soonest first (only those due by `due_by`)."""
        entries = self.client.zrangebyscore(
            self.prefix + "held", "-inf", "+inf" if due_by is None else due_by, withscores=True
        )
        if not entries:
            return []
        infos = self.client.hmget(self.prefix + "held-info", [queue_id for queue_id, _ in entries])
        return [
            (queue_id.decode(), float(score), (info or b"").decode())
            for (queue_id, score), info in zip(entries, infos, strict=True)
        ]

    def hold_done(self, queue_id: str) -> None:
        pipe = self.client.pipeline()
        pipe.zrem(self.prefix + "held", queue_id)
        pipe.hdel(self.prefix + "held-info", queue_id)
        pipe.execute()

    def close(self) -> None:
        self.client.close()


class FileCounters:
    """Counters in an SQLite file (WAL): each count is committed before the answer, so a killed server loses
    nothing; another process (send_limits) reads and resets them beside it. Each thread has its own connection
    (the policy server's loop, its releaser, the checkpoint thread), so one thread's transaction never carries or
    undoes another's writes.

    Group commit: once the policy server's loop thread calls defer_commits(), the counts it adds stay in one open
    transaction until it calls commit(), once per turn of its loop, before it sends the answers that depend on
    them. A commit costs more than the counting itself; so many messages share one."""

    def __init__(self, path: Path | str, *, checkpoint_seconds: float | None = None, timeout: float = 30.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self._checkpoint_seconds = checkpoint_seconds
        self._local = threading.local()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._connections_lock = threading.Lock()
        # Set by the checkpoint thread after its pass: the loop's next commit copies what was written meanwhile (a
        # few pages), so its next transaction starts the WAL over instead of letting it grow.
        self._wal_behind = False
        self._stop = threading.Event()
        private_file_create(self.path)  # 0600 like the data directory's other files (its WAL and shm follow it)
        db = self._db()
        db.execute(
            "CREATE TABLE IF NOT EXISTS counter (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires REAL NOT NULL)"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS held "
            "(queue_id TEXT PRIMARY KEY, release_at REAL NOT NULL, payload TEXT NOT NULL)"
        )
        if checkpoint_seconds:
            threading.Thread(
                target=self._checkpoint_forever, args=(checkpoint_seconds,), name="policy-checkpoint", daemon=True
            ).start()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self.timeout)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit reaches the file (the OS keeps it across a killed process) without an fsync each time.
        db.execute("PRAGMA synchronous=NORMAL")
        if self._checkpoint_seconds:
            # The policy server's hot path: a commit that passes the WAL's 1,000 pages would copy them into the file
            # and fsync both, a stall of milliseconds for every request then waiting. A thread does it instead.
            db.execute("PRAGMA wal_autocheckpoint=0")
            # A WAL that grew during a burst is cut back to this when it starts over.
            db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        return db

    def _db(self) -> sqlite3.Connection:
        """This thread's connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            with self._connections_lock:
                # The connections of threads that have ended are closed (a turn one left open is rolled back).
                for _thread, ended in [pair for pair in self._connections if not pair[0].is_alive()]:
                    ended.close()
                self._connections = [pair for pair in self._connections if pair[0].is_alive()]
                self._connections.append((threading.current_thread(), db))
            self._local.db = db
        return db

    def get(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        return self._values(self._db(), keys, time.time())

    # --- group commit (the policy server's loop thread) ---

    @property
    def pending(self) -> bool:
        """Whether this thread's deferred counts wait for commit()."""
        return getattr(self._local, "turn_open", False)

    @property
    def writes(self) -> int:
        """How many counts and holds this thread has written (the server tells whether a failed request wrote)."""
        return getattr(self._local, "writes", 0)

    def defer_commits(self) -> None:
        self._local.deferred = True
        # The loop waits at most 5 s for a write lock another process holds (every answer waits with it); others
        # wait up to `timeout` for the loop's, which it holds for most of each turn at full load.
        self._db().execute("PRAGMA busy_timeout=5000")

    def commit(self) -> None:
        """Make this turn's deferred counts durable. Raises when they are not: the commit failed, or the transaction
        was rolled back under them (an error SQLite rolls back by itself); nothing of the turn is counted then."""
        if not self.pending:
            return
        db = self._db()
        try:
            if not db.in_transaction:
                raise sqlite3.OperationalError("this turn's counts were rolled back before their commit")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            self._local.turn_open = False
        if self._wal_behind:
            self._wal_behind = False
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                logger.exception("policy counters: checkpointing %s failed; trying again later", self.path)

    def rollback(self) -> None:
        """Undo this thread's uncommitted counts."""
        db = self._db()
        self._local.turn_open = False
        if db.in_transaction:
            db.execute("ROLLBACK")

    def try_add(self, counts: Sequence[Count], amount: int, ttl: int = TTL_SECONDS) -> tuple[bool, int, int]:
        if not counts:
            return True, -1, 0
        db = self._db()
        deferred = getattr(self._local, "deferred", False)
        if deferred:
            if not self.pending:
                db.execute("BEGIN IMMEDIATE")
                self._local.turn_open = True
            elif not db.in_transaction:  # SQLite rolled the turn back under an error: nothing more counts in it
                self._local.writes = self.writes + 1
                raise sqlite3.OperationalError("this turn's counts were rolled back")
        else:
            db.execute("BEGIN IMMEDIATE")
        now = time.time()
        try:
            used = self._values(db, [count.key for count in counts], now)
            amounts = [amount if count.amount is None else count.amount for count in counts]
            for index, count in enumerate(counts):
                if count.limit is not None and used[index] + amounts[index] > count.limit:
                    if not deferred:  # nothing was written; deferred, the turn's other counts stay
                        db.execute("ROLLBACK")
                    return False, index, used[index]
            expires = now + ttl
            db.executemany(
                "INSERT INTO counter (key, value, expires) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "value = CASE WHEN counter.expires > ? THEN counter.value ELSE 0 END + excluded.value, "
                "expires = excluded.expires",
                [(count.key, step, expires, now) for count, step in zip(counts, amounts, strict=True)],
            )
            if not deferred:
                db.execute("COMMIT")
        except BaseException:
            if not deferred and db.in_transaction:
                db.execute("ROLLBACK")
            elif deferred:
                # Part of it may be written: counted as a write, so the server undoes the whole turn.
                self._local.writes = self.writes + 1
            raise
        self._local.writes = self.writes + 1
        return True, -1, 0

    def _values(self, db: sqlite3.Connection, keys: Sequence[str], now: float) -> list[int]:
        marks = ",".join("?" * len(keys))
        rows = dict(
            db.execute(
                f"SELECT key, value FROM counter WHERE expires > ? AND key IN ({marks})",  # noqa: S608 - placeholders only
                (now, *keys),
            ).fetchall()
        )
        return [int(rows.get(key, 0)) for key in keys]

    def reset(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        cursor = self._db().execute(
            f"DELETE FROM counter WHERE key IN ({','.join('?' * len(keys))})",  # noqa: S608 - placeholders only
            tuple(keys),
        )
        return cursor.rowcount

    def scan(self, prefix: str, suffix: str) -> dict[str, int]:
        rows = (
            self._db()
            .execute(
                "SELECT key, value FROM counter WHERE expires > ? AND substr(key, 1, ?) = ? AND substr(key, -?) = ?",
                (time.time(), len(prefix), prefix, len(suffix), suffix),
            )
            .fetchall()
        )
        return {key: int(value) for key, value in rows}

    def prune(self) -> int:
        return self._db().execute("DELETE FROM counter WHERE expires <= ?", (time.time(),)).rowcount

    def hold_add(self, queue_id: str, release_at: float, payload: str) -> None:
        self._db().execute(
            "INSERT OR REPLACE INTO held (queue_id, release_at, payload) VALUES (?, ?, ?)",
            (queue_id, release_at, payload),
        )
        self._local.writes = self.writes + 1

    def hold_get(self, queue_id: str) -> str | None:
        row = self._db().execute("SELECT payload FROM held WHERE queue_id = ?", (queue_id,)).fetchone()
        return row[0] if row else None

    def holds(self, due_by: float | None = None) -> list[tuple[str, float, str]]:
        rows = (
            self._db()
            .execute(
                "SELECT queue_id, release_at, payload FROM held WHERE release_at <= ? ORDER BY release_at, queue_id",
                (float("inf") if due_by is None else due_by,),
            )
            .fetchall()
        )
        return [(queue_id, float(release_at), payload) for queue_id, release_at, payload in rows]

    def hold_done(self, queue_id: str) -> None:
        self._db().execute("DELETE FROM held WHERE queue_id = ?", (queue_id,))

    def _checkpoint_forever(self, seconds: float) -> None:
        """Copy the WAL into the file every `seconds`, on a connection of its own, while the loop goes on; the loop's
        next commit then copies the few pages it wrote meanwhile (FileCounters.commit, well under a millisecond).
        The WAL starts over only once all of it is in the file: without that last step, at full load it never
        would, and it would grow by megabytes a second."""
        db = self._connect()
        try:
            while not self._stop.wait(seconds):
                try:
                    _busy, log, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self._wal_behind = log > 0
                except sqlite3.Error:
                    logger.exception("policy counters: checkpointing %s failed; trying again later", self.path)
        finally:
            db.close()

    def close(self) -> None:
        self._stop.set()
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for _thread, db in connections:
            db.close()


Counters = RedisCounters | FileCounters


def counters_file() -> Path:
    from django.conf import settings

    return Path(settings.DATA_DIR) / "policy-counters.sqlite3"


def open_counters(*, checkpoint_seconds: float | None = None) -> Counters:
    """The store the policy server and send_limits share: Redis with REDIS_URL, else the data directory's file (the
    policy server checkpoints it every `checkpoint_seconds` off its hot path)."""
    from django.conf import settings

    if settings.REDIS_URL:
        return RedisCounters(settings.REDIS_URL)
    return FileCounters(counters_file(), checkpoint_seconds=checkpoint_seconds)
