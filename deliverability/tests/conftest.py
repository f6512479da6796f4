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
