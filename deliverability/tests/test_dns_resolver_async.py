"""deliverability.dns.resolver's AsyncDnsRun (the DNSBL sweep's) against a real NSD, behind a proxy that holds each
query and counts how many are in flight: the same answers as DnsRun, each question asked once, and never more than
`concurrency` queries out at a time."""

import asyncio

import pytest

from deliverability.dns.answer import ERROR, NODATA, NXDOMAIN, OK, TIMEOUT, Answer
from deliverability.dns.resolver import AsyncDnsRun
from deliverability.tests.dns_server import LatencyProxy

NAMES = [f"host{i}.example.test" for i in range(10)]


@pytest.fixture
def example(dns_server):
    return dns_server.zone("example.test", ["@ A 192.0.2.10", *(f"host{i} A 192.0.2.{i}" for i in range(10))])


def test_many_lookups_come_back_in_the_order_asked(example):
    run = AsyncDnsRun()
    answers = asyncio.run(
        run.lookup_many(
            [("example.test", "A"), ("example.test", "MX"), ("nope.example.test", "A"), ("a..b", "A")]
            + [(name, "A") for name in NAMES]
        )
    )
    assert answers[0] == Answer("example.test", "A", OK, ("192.0.2.10",))
    assert [answer.status for answer in answers[1:4]] == [NODATA, NXDOMAIN, ERROR]
    assert [answer.records for answer in answers[4:]] == [(f"192.0.2.{i}",) for i in range(10)]
    assert run.queries_sent == 13  # the invalid name never went out


def test_a_question_asked_again_while_in_flight_goes_out_once(example):
    with LatencyProxy(example.port, latency=0.2) as proxy:
        run = AsyncDnsRun(nameservers=proxy.nameservers)
        answers = asyncio.run(run.lookup_many([("example.test", "A"), ("Example.Test.", "A")] * 3))
    assert set(answers) == {Answer("example.test", "A", OK, ("192.0.2.10",))}
    assert (proxy.received, run.queries_sent) == (1, 1)


def test_no_more_than_the_concurrency_limit_is_in_flight(example):
    with LatencyProxy(example.port, latency=0.2) as proxy:
        run = AsyncDnsRun(nameservers=proxy.nameservers, concurrency=2)
        answers = asyncio.run(run.lookup_many([(name, "A") for name in NAMES]))
    assert all(answer.status == OK for answer in answers)
    assert proxy.received == 10
    assert proxy.max_outstanding == 2
    # Positive control: without the limit the same ten lookups do overlap at the proxy.
    with LatencyProxy(example.port, latency=0.2) as proxy:
        asyncio.run(AsyncDnsRun(nameservers=proxy.nameservers, concurrency=10).lookup_many([(n, "A") for n in NAMES]))
    assert proxy.max_outstanding > 2


def test_the_concurrency_limit_comes_from_the_settings(settings):
    settings.DNS_CONCURRENCY = 7
    assert AsyncDnsRun(nameservers=[("127.0.0.1", 9)]).concurrency == 7
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        AsyncDnsRun(nameservers=[("127.0.0.1", 9)], concurrency=0)


def test_a_silent_server_is_a_timeout(silent_dns_server):
    run = AsyncDnsRun(nameservers=silent_dns_server.nameservers, timeout=0.3)
    answer = asyncio.run(run.lookup("example.test", "TXT"))
    assert (answer.status, answer.error) == (TIMEOUT, "no answer within 0.3 s")


def test_a_caller_giving_up_does_not_cancel_the_question_for_the_others(example):
    async def scenario(run):
        impatient = asyncio.ensure_future(run.lookup("example.test", "A"))
        patient = asyncio.ensure_future(run.lookup("example.test", "A"))
        await asyncio.sleep(0)  # both are waiting on the one query
        impatient.cancel()
        return await patient, impatient.cancelled()

    with LatencyProxy(example.port, latency=0.2) as proxy:
        run = AsyncDnsRun(nameservers=proxy.nameservers)
        answer, cancelled = asyncio.run(scenario(run))
    assert cancelled and answer.records == ("192.0.2.10",)
    assert proxy.received == 1
