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

logger = logging.getLogger("dockspace.policy")

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
    nothing; another process (send_limits) reads and resets them beside it.

    Group commit: once the policy server's loop thread calls defer_commits(), the counts it adds stay in one open
    transaction until it calls commit(), once per turn of its loop, before it sends the answers that depend on
    them. A commit costs more than the counting itself; so many messages share one. Other threads' writes are
    never held back."""

    def __init__(self, path: Path | str, *, checkpoint_seconds: float | None = None) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deferring: int | None = None  # the thread whose counts wait for commit()
        self._open = False  # a transaction of deferred counts is open
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit reaches the file (the OS keeps it across a killed process) without an fsync each time.
        self.db.execute("PRAGMA synchronous=NORMAL")
        if checkpoint_seconds:
            # The policy server's hot path: a commit that passes the WAL's 1,000 pages would copy them into the file
            # and fsync both, a stall of milliseconds for every request then waiting. A thread does it instead.
            self.db.execute("PRAGMA wal_autocheckpoint=0")
            threading.Thread(
                target=self._checkpoint_forever, args=(checkpoint_seconds,), name="policy-checkpoint", daemon=True
            ).start()
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS counter (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires REAL NOT NULL)"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS held "
            "(queue_id TEXT PRIMARY KEY, release_at REAL NOT NULL, payload TEXT NOT NULL)"
        )

    def get(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        now = time.time()
        with self._lock:
            rows = dict(
                self.db.execute(
                    f"SELECT key, value FROM counter WHERE expires > ? AND key IN ({','.join('?' * len(keys))})",  # noqa: S608 - placeholders only
                    (now, *keys),
                ).fetchall()
            )
        return [int(rows.get(key, 0)) for key in keys]

    @property
    def pending(self) -> bool:
        """Whether deferred counts wait for commit()."""
        return self._open

    def defer_commits(self) -> None:
        self._deferring = threading.get_ident()

    def commit(self) -> None:
        """Make the deferred counts durable; a failure undoes them all (and raises)."""
        with self._lock:
            if not self._open:
                return
            try:
                self.db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self._open = False

    def rollback(self) -> None:
        with self._lock:
            self._rollback()

    def _rollback(self) -> None:
        self._open = False
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def try_add(self, counts: Sequence[Count], amount: int, ttl: int = TTL_SECONDS) -> tuple[bool, int, int]:
        if not counts:
            return True, -1, 0
        now = time.time()
        deferred = self._deferring == threading.get_ident()
        with self._lock:
            opened = not self._open
            if opened:
                self.db.execute("BEGIN IMMEDIATE")
                self._open = True
            try:
                used = self._values([count.key for count in counts], now)
                amounts = [amount if count.amount is None else count.amount for count in counts]
                for index, count in enumerate(counts):
                    if count.limit is not None and used[index] + amounts[index] > count.limit:
                        if opened and not deferred:  # nothing was written; deferred, the others' counts stay
                            self._rollback()
                        return False, index, used[index]
                expires = now + ttl
                self.db.executemany(
                    "INSERT INTO counter (key, value, expires) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                    "value = CASE WHEN counter.expires > ? THEN counter.value ELSE 0 END + excluded.value, "
                    "expires = excluded.expires",
                    [(count.key, step, expires, now) for count, step in zip(counts, amounts, strict=True)],
                )
                if not deferred:
                    self.db.execute("COMMIT")
                    self._open = False
            except BaseException:
                self._rollback()
                raise
        return True, -1, 0

    def _values(self, keys: Sequence[str], now: float) -> list[int]:
        marks = ",".join("?" * len(keys))
        rows = dict(
            self.db.execute(
                f"SELECT key, value FROM counter WHERE expires > ? AND key IN ({marks})",  # noqa: S608 - placeholders only
                (now, *keys),
            ).fetchall()
        )
        return [int(rows.get(key, 0)) for key in keys]

    def reset(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        with self._lock:
            cursor = self.db.execute(
                f"DELETE FROM counter WHERE key IN ({','.join('?' * len(keys))})",  # noqa: S608 - placeholders only
                tuple(keys),
            )
        return cursor.rowcount

    def scan(self, prefix: str, suffix: str) -> dict[str, int]:
        with self._lock:
            rows = self.db.execute(
                "SELECT key, value FROM counter WHERE expires > ? AND substr(key, 1, ?) = ? AND substr(key, -?) = ?",
                (time.time(), len(prefix), prefix, len(suffix), suffix),
            ).fetchall()
        return {key: int(value) for key, value in rows}

    def prune(self) -> int:
        with self._lock:
            return self.db.execute("DELETE FROM counter WHERE expires <= ?", (time.time(),)).rowcount

    def hold_add(self, queue_id: str, release_at: float, payload: str) -> None:
        with self._lock:
            self.db.execute(
                "INSERT OR REPLACE INTO held (queue_id, release_at, payload) VALUES (?, ?, ?)",
                (queue_id, release_at, payload),
            )

    def hold_get(self, queue_id: str) -> str | None:
        with self._lock:
            row = self.db.execute("SELECT payload FROM held WHERE queue_id = ?", (queue_id,)).fetchone()
        return row[0] if row else None

    def holds(self, due_by: float | None = None) -> list[tuple[str, float, str]]:
        with self._lock:
            rows = self.db.execute(
                "SELECT queue_id, release_at, payload FROM held WHERE release_at <= ? ORDER BY release_at, queue_id",
                (float("inf") if due_by is None else due_by,),
            ).fetchall()
        return [(queue_id, float(release_at), payload) for queue_id, release_at, payload in rows]

    def hold_done(self, queue_id: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM held WHERE queue_id = ?", (queue_id,))

    def _checkpoint_forever(self, seconds: float) -> None:
        """Copy the WAL into the file every `seconds` on a connection of its own; PASSIVE: no writer waits for it."""
        db = sqlite3.connect(self.path, isolation_level=None, timeout=5)
        try:
            while not self._stop.wait(seconds):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    logger.exception("policy counters: checkpointing %s failed; trying again later", self.path)
        finally:
            db.close()

    def close(self) -> None:
        self._stop.set()
        self.db.close()


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
