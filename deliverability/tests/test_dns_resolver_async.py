"""deliverability.dns.resolver's AsyncDnsRun (the DNSBL sweep's) against a real NSD, behind a proxy that holds each
query and counts how many are in flight: the same answers as DnsRun, each question asked once, and never more than
`concurrency` queries out at a time."""

import asyncio
import os
import socket
import struct
from collections import Counter

import pytest

from deliverability.dns import resolver
from deliverability.dns.answer import ERROR, NODATA, NXDOMAIN, OK, SERVFAIL, TIMEOUT, Answer
from deliverability.dns.resolver import AsyncDnsRun
from deliverability.tests.dns_server import (
    LatencyProxy,
    ScriptedDnsServer,
    answer_packet,
    query_packet,
    question_of,
)

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


def test_a_sweep_that_gives_up_takes_up_no_more_questions_and_leaves_the_others_theirs(example):
    async def scenario(run):
        sweep = asyncio.ensure_future(run.lookup_many([(name, "A") for name in NAMES]))
        await asyncio.sleep(0.05)  # the first two questions are out
        other = asyncio.ensure_future(run.lookup(NAMES[0], "A"))
        await asyncio.sleep(0)
        sweep.cancel()
        return await other, sweep.cancelled()

    with LatencyProxy(example.port, latency=0.3) as proxy:
        run = AsyncDnsRun(nameservers=proxy.nameservers, concurrency=2)
        answer, cancelled = asyncio.run(scenario(run))
    assert cancelled and answer.records == ("192.0.2.0",)
    assert proxy.received == 2


def test_a_server_failure_and_a_refusal_are_failures_naming_the_server(dns_server):
    dns_server.failing_zone("broken.test")
    run = AsyncDnsRun()
    broken, refused = asyncio.run(run.lookup_many([("www.broken.test", "A"), ("elsewhere.test", "A")]))
    assert broken.status == SERVFAIL
    assert broken.error.endswith(f"127.0.0.1:{dns_server.port} answered SERVFAIL"), broken.error
    assert refused.status == ERROR  # no zone of NSD's: it refuses
    assert refused.error.endswith(f"127.0.0.1:{dns_server.port} answered REFUSED"), refused.error


def test_cnames_are_followed_and_an_answer_too_large_for_udp_comes_over_tcp(dns_server):
    padding = "x" * 200
    dns_server.zone(
        "example.test",
        [
            "@ A 192.0.2.10",
            "www CNAME @",
            "dangling CNAME nowhere.example.test.",
            *(f'big TXT "{i} {padding}"' for i in range(10)),
        ],
    )
    run = AsyncDnsRun()
    www, dangling, big = asyncio.run(
        run.lookup_many([("www.example.test", "A"), ("dangling.example.test", "A"), ("big.example.test", "TXT")])
    )
    assert www == Answer("www.example.test", "A", OK, ("192.0.2.10",))
    assert dangling.status == NXDOMAIN  # the CNAME's target does not exist
    # About 2,200 bytes: truncated over UDP, asked again over TCP.
    assert (big.status, len(big.records), big.records[0]) == (OK, 10, f"0 {padding}")
    assert run.queries_sent == 4


def test_the_next_resolver_answers_when_the_first_is_silent(example, silent_dns_server, monkeypatch):
    monkeypatch.setattr(resolver, "SERVER_TIMEOUT", 0.2)
    run = AsyncDnsRun(nameservers=silent_dns_server.nameservers + example.nameservers, timeout=3)
    assert asyncio.run(run.lookup("example.test", "A")).records == ("192.0.2.10",)
    assert silent_dns_server.received == 1 and run.queries_sent == 2


# The queries in flight to a server share one UDP socket (resolver.UdpChannel): the answers are told apart by their
# ID and question alone. These servers answer as each test scripts them.


def test_answers_that_come_back_in_another_order_each_reach_their_own_question():
    def answer_in_reverse_once_all_came(server):
        if len(server.queries) == 5:
            for query, client in reversed(server.queries):
                name, _, _ = question_of(query)
                server.send(answer_packet(query, [f"192.0.2.{name[4]}"]), client)  # host3.example.test: 192.0.2.3

    with ScriptedDnsServer(answer_in_reverse_once_all_came) as server:
        run = AsyncDnsRun(nameservers=server.nameservers, timeout=2, concurrency=5)
        answers = asyncio.run(run.lookup_many([(f"host{i}.example.test", "A") for i in range(5)]))
    assert [answer.records for answer in answers] == [(f"192.0.2.{i}",) for i in range(5)]
    assert len({client for _, client in server.queries}) == 1  # one socket: only the IDs told the answers apart


def test_forged_and_stray_datagrams_are_dropped_and_the_real_answer_is_taken():
    elsewhere = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    elsewhere.bind(("127.0.0.1", 0))
    _, _, other_question = question_of(query_packet("other.example.test", 1))

    def forge_then_answer(server):
        query, client = server.queries[-1]
        ident = struct.unpack("!H", query[:2])[0]
        server.send(answer_packet(query, ["127.0.0.2"], ident=ident ^ 1), client)  # another ID
        server.send(answer_packet(query, ["127.0.0.2"], name=other_question), client)  # another question
        elsewhere.sendto(answer_packet(query, ["127.0.0.2"]), client)  # right ID and question, from another port
        server.send(query[:2] + struct.pack("!HHHHH", 0x8180, 1, 0, 0, 0), client)  # no question: not a message
        server.send(answer_packet(query, ["192.0.2.10"]), client)

    with elsewhere, ScriptedDnsServer(forge_then_answer) as server:
        run = AsyncDnsRun(nameservers=server.nameservers, timeout=2)
        answer = asyncio.run(run.lookup("example.test", "A"))
    assert answer == Answer("example.test", "A", OK, ("192.0.2.10",))
    assert run.queries_sent == 1


def test_an_answer_that_comes_after_its_query_timed_out_is_dropped(monkeypatch):
    monkeypatch.setattr(resolver, "SERVER_TIMEOUT", 0.5)

    def answer_late(server):
        # host1's first query (at 0 s) goes unanswered; it times out at 0.5 s while host2's (asked at 0.4 s) keeps
        # the socket open, and its retry comes on that socket at 0.6 s. Then its first query is answered (too late),
        # its retry, and host2.
        if len(server.queries) == 3:
            (first, client), (host2, _), (retry, _) = server.queries
            server.send(answer_packet(first, ["127.0.0.2"]), client)
            server.send(answer_packet(retry, ["192.0.2.1"]), client)
            server.send(answer_packet(host2, ["192.0.2.2"]), client)

    async def host1_then_host2(run):
        host1 = asyncio.ensure_future(run.lookup("host1.example.test", "A"))
        await asyncio.sleep(0.4)
        host2 = asyncio.ensure_future(run.lookup("host2.example.test", "A"))
        return [await host1, await host2]

    with ScriptedDnsServer(answer_late) as server:
        run = AsyncDnsRun(nameservers=server.nameservers, timeout=3)
        answers = asyncio.run(host1_then_host2(run))
    assert [question_of(query)[0] for query, _ in server.queries] == [
        "host1.example.test",
        "host2.example.test",
        "host1.example.test",
    ]
    assert len({client for _, client in server.queries}) == 1
    assert [answer.records for answer in answers] == [("192.0.2.1",), ("192.0.2.2",)]


def test_a_socket_carries_a_bounded_number_of_queries_and_none_is_left_open(monkeypatch):
    monkeypatch.setattr(resolver, "UDP_SOCKET_QUERIES", 3)

    def answer_once_all_came(server):
        if len(server.queries) == 8:
            for query, client in server.queries:
                server.send(answer_packet(query, ["192.0.2.1"]), client)

    open_files = len(os.listdir("/proc/self/fd"))
    with ScriptedDnsServer(answer_once_all_came) as server:
        run = AsyncDnsRun(nameservers=server.nameservers, timeout=2, concurrency=8)
        answers = asyncio.run(run.lookup_many([(f"host{i}.example.test", "A") for i in range(8)]))
        assert len(os.listdir("/proc/self/fd")) == open_files + 1  # the server's socket
    assert all(answer.records == ("192.0.2.1",) for answer in answers)
    # A fresh random source port every 3 queries: 3 + 3 + 2, all in flight together.
    assert sorted(Counter(client for _, client in server.queries).values()) == [2, 3, 3]
