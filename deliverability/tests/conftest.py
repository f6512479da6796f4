"""Fixtures of the deliverability tests: DNS servers on loopback (deliverability/tests/dns_server.py)."""

import pytest

from deliverability.tests.dns_server import DnsServer, SilentDnsServer, require_nsd
from deliverability.tests.mail_dns import domain, mail_dns  # noqa: F401 (pytest finds fixtures by name)


@pytest.fixture
def dns_server(tmp_path, settings):
    """A running NSD with no zones yet (add them with `dns_server.zone(...)`); Dockspace's resolver settings point
    at it, so `DnsRun()` asks it."""
    require_nsd()
    server = DnsServer(tmp_path / "nsd").start()
    settings.DNS_NAMESERVERS = server.nameservers
    yield server
    server.stop()


@pytest.fixture
def silent_dns_server():
    """A loopback DNS port that reads queries and never answers."""
    with SilentDnsServer() as server:
        yield server


@pytest.fixture
def policy_counters(settings, tmp_path):
    """The policy service's counters as the server and send_limits share them: the data directory's file (a fresh
    one), or Redis with REDIS_URL (its policy keys emptied first)."""
    from deliverability.policy_counters import open_counters

    settings.DATA_DIR = tmp_path
    counters = open_counters()
    if settings.REDIS_URL:
        for key in counters.client.scan_iter(f"{counters.prefix}*"):
            counters.client.delete(key)
    yield counters
    counters.close()


@pytest.fixture(params=["file", "redis"])
def counters(request, tmp_path, settings):
    """Each of the policy service's counter stores in turn, empty: the SQLite file, then Redis (with REDIS_URL, as in
    CI's PostgreSQL and Redis pass; skipped without it)."""
    from deliverability.policy_counters import FileCounters, RedisCounters

    if request.param == "file":
        store = FileCounters(tmp_path / "counters.sqlite3")
    else:
        if not settings.REDIS_URL:
            pytest.skip("REDIS_URL is not set: the Redis counters run in CI's PostgreSQL and Redis pass")
        store = RedisCounters(settings.REDIS_URL)
        for key in store.client.scan_iter(f"{store.prefix}*"):
            store.client.delete(key)
    yield store
    store.close()
