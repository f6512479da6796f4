"""`manage.py policy_server` as the process an operator runs: a kill -9 mid-day keeps the day's counts, a change of a
tier in the admin is enforced within seconds without a restart, and two servers on one Redis never let more mail
through than the limit between them."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

from deliverability.tests.policy_client import PostfixClient, free_port
from dockspace.tests.celery_processes import database_url, wait_for
from mail import services
from mail.models import Mailbox, Tier
from mail.tests.factories import make_domain, make_mailbox, make_tier

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(settings.BASE_DIR)


class Server:
    def __init__(self, tmp_path, *, redis_url="", name="policy"):
        self.port = free_port()
        self.log = tmp_path / f"{name}-{self.port}.log"
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DOCKSPACE_DATA_DIR": str(tmp_path / "data"),
            "DOCKSPACE_POLICY_RELOAD_SECONDS": "1",
            "REDIS_URL": redis_url,
        }
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "policy_server", "--listen", f"127.0.0.1:{self.port}"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        assert wait_for(lambda: self._accepts() or self.proc.poll() is not None, 60) and self._accepts(), self.text()

    def _accepts(self):
        try:
            PostfixClient(self.port).close()
        except OSError:
            return False
        return True

    def text(self):
        return self.log.read_text()

    def stop(self, signum=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def servers():
    started = []
    yield started
    for server in started:
        server.stop(signal.SIGKILL)


@pytest.fixture
def bob():
    make_domain("example.com", tier=make_tier(name="small", daily_send_limit=5))
    make_mailbox("bob@example.com")


def test_a_kill_9_mid_day_keeps_the_days_counts(tmp_path, servers, bob):
    (tmp_path / "data").mkdir()
    first = Server(tmp_path)
    servers.append(first)
    postfix = PostfixClient(first.port)
    assert postfix.send("bob@example.com", ["a@gmail.com", "b@gmail.com", "c@gmail.com", "d@gmail.com"])[2] == "DUNNO"
    postfix.close()

    first.stop(signal.SIGKILL)
    second = Server(tmp_path)
    servers.append(second)
    postfix = PostfixClient(second.port)
    one_more = postfix.send("bob@example.com", ["e@gmail.com"])
    over = postfix.send("bob@example.com", ["f@gmail.com"])
    postfix.close()

    assert one_more == (["DUNNO"], "DUNNO", "DUNNO")
    assert over[0] == [
        "452 4.5.3 bob@example.com sent to 5 of 5 recipients allowed today; the limit resets at 00:00 UTC"
    ]


def test_a_tier_changed_while_it_runs_is_enforced_within_seconds(tmp_path, servers, bob):
    (tmp_path / "data").mkdir()
    server = Server(tmp_path)
    servers.append(server)
    postfix = PostfixClient(server.port)
    postfix.send("bob@example.com", ["a@gmail.com", "b@gmail.com"])

    tier = Tier.objects.get(name="small")
    tier.daily_send_limit = 2
    services.tier_save(tier=tier, actor_label="test")
    changed_at = time.monotonic()

    def refused():
        return postfix.send("bob@example.com", ["c@gmail.com"])[0][0].startswith(
            "452 4.5.3 bob@example.com sent to 2 of 2"
        )

    assert wait_for(refused, 15), server.text()
    assert time.monotonic() - changed_at < 10
    assert "configuration reloaded" in server.text()
    postfix.close()


def test_a_suspended_mailbox_is_refused_within_seconds(tmp_path, servers, bob):
    (tmp_path / "data").mkdir()
    server = Server(tmp_path)
    servers.append(server)
    postfix = PostfixClient(server.port)
    assert postfix.send("bob@example.com", ["a@gmail.com"])[2] == "DUNNO"

    services.mailbox_set_state(
        mailbox=Mailbox.objects.get(address="bob@example.com"), state=Mailbox.SUSPENDED, actor_label="test"
    )

    assert wait_for(lambda: postfix.send("bob@example.com", ["b@gmail.com"])[0][0].startswith("554 5.7.1"), 15)
    postfix.close()


def test_two_servers_on_one_redis_let_through_exactly_the_limit_between_them(tmp_path, servers, bob):
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set: two servers share counters only through Redis (CI's second pass)")
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("dockspace:policy:*"):
        client.delete(key)
    Tier.objects.filter(name="small").update(daily_send_limit=100)
    (tmp_path / "data").mkdir()
    pair = [Server(tmp_path, redis_url=settings.REDIS_URL, name=name) for name in ("one", "two")]
    servers.extend(pair)
    accepted = []

    def send_from(server):
        postfix = PostfixClient(server.port)
        for n in range(80):
            _, _, at_end = postfix.send("bob@example.com", [f"r{n}@gmail.com"])
            if at_end == "DUNNO":
                accepted.append(server.port)
        postfix.close()

    threads = [threading.Thread(target=send_from, args=(server,)) for server in pair]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(accepted) == 100
    assert {pair[0].port, pair[1].port} <= set(accepted)


def test_an_address_it_cannot_listen_on_is_refused_with_the_reason(tmp_path):
    env = {**os.environ, "DATABASE_URL": database_url(), "DOCKSPACE_DATA_DIR": str(tmp_path)}
    bad = subprocess.run(
        [sys.executable, "manage.py", "policy_server", "--listen", "nowhere"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert bad.returncode != 0
    assert "--listen must be HOST:PORT such as 127.0.0.1:8000; got 'nowhere'." in bad.stderr
    assert "Traceback" not in bad.stderr
