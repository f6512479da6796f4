"""Two writers at once on PostgreSQL: the first is held after its writes, before its commit, while the second
runs; the second either finishes (no lock: the race) or waits for a row lock, then the first goes on."""

import threading

from django.db import connection


def waiting_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0


def hold_one_at(monkeypatch, owner, name: str) -> tuple[threading.Event, threading.Event]:
    """Make `owner.name` (a function called after the writes, before the commit) hold the thread named "one": it
    sets `holding` and waits for `release`. Returns (holding, release) for run_one_then_two."""
    holding, release = threading.Event(), threading.Event()
    real = getattr(owner, name)

    def held(*args, **kw):
        if threading.current_thread().name == "one":
            holding.set()
            release.wait()
        return real(*args, **kw)

    monkeypatch.setattr(owner, name, held)
    return holding, release


def run_one_then_two(one, two, *, holding: threading.Event, release: threading.Event) -> None:
    """Run `one` in a thread named "one" until it sets `holding` (it then waits for `release`), then `two` in a
    thread named "two" until it is done or waits for a lock; release `one` and wait for both."""
    first = threading.Thread(target=one, name="one")
    first.start()
    holding.wait()
    second = threading.Thread(target=two, name="two")
    second.start()
    while second.is_alive() and not waiting_for_a_lock():
        second.join(0.05)
    release.set()
    first.join()
    second.join()
