"""deliverability.dns.resolver (DnsRun) against a real NSD on loopback: what each kind of record and each failure
becomes, and that a run asks each question once."""

import pytest

from deliverability.dns import resolver
from deliverability.dns.answer import ERROR, NODATA, NXDOMAIN, OK, SERVFAIL, TIMEOUT, Answer
from deliverability.dns.resolver import DnsRun, dnsbl_query_name, reverse_name

EXAMPLE = [
    "@ A 192.0.2.10",
    "@ AAAA 2001:db8::10",
    "@ MX 20 MX2.Example.Test.",
    "@ MX 10 mx1",
    '@ TXT "v=spf1 ip4:192.0.2.0/24 " "include:_spf.example.net " "-all"',
    '_dmarc TXT "v=DMARC1; p=none"',
    '_dmarc TXT "v=DMARC1; p=reject"',
    "www CNAME @",
    "only-a A 192.0.2.11",
]


@pytest.fixture
def example(dns_server):
    return dns_server.zone("example.test", EXAMPLE)


def test_it_answers_addresses_and_mail_exchangers(example):
    run = DnsRun()
    assert run.lookup("example.test", "A") == Answer("example.test", "A", OK, ("192.0.2.10",))
    assert run.lookup("example.test", "AAAA") == Answer("example.test", "AAAA", OK, ("2001:db8::10",))
    # Sorted by preference, names lower case without the trailing dot.
    assert run.lookup("example.test", "MX").records == ("10 mx1.example.test", "20 mx2.example.test")


def test_it_joins_the_strings_of_one_txt_record_and_keeps_two_records_apart(example):
    run = DnsRun()
    assert run.lookup("example.test", "TXT").records == ("v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all",)
    assert run.lookup("_dmarc.example.test", "TXT").records == ("v=DMARC1; p=none", "v=DMARC1; p=reject")


def test_it_answers_pointer_records_of_ipv4_and_ipv6_addresses(dns_server):
    dns_server.zone("2.0.192.in-addr.arpa", ["25 PTR Mail.Example.Test."])
    dns_server.zone("8.b.d.0.1.0.0.2.ip6.arpa", [f"{reverse_name('2001:db8::25')}. PTR mail6.example.test."])
    run = DnsRun()
    assert run.lookup(reverse_name("192.0.2.25"), "PTR") == Answer(
        "25.2.0.192.in-addr.arpa", "PTR", OK, ("mail.example.test",)
    )
    assert run.lookup(reverse_name("2001:db8::25"), "PTR").records == ("mail6.example.test",)


def test_a_cname_is_followed_by_the_resolver_in_one_query(example):
    run = DnsRun()
    assert run.lookup("www.example.test", "A") == Answer("www.example.test", "A", OK, ("192.0.2.10",))
    assert run.queries_sent == 1


def test_a_missing_name_is_nxdomain_and_a_missing_type_is_nodata(example):
    run = DnsRun()
    missing = run.lookup("nope.example.test", "A")
    assert (missing.status, missing.records, missing.is_void) == (NXDOMAIN, (), True)
    no_mx = run.lookup("only-a.example.test", "MX")
    assert (no_mx.status, no_mx.is_void, no_mx.is_failure) == (NODATA, True, False)
    assert run.lookup("only-a.example.test", "A").status == OK


def test_a_server_failure_and_a_refusal_are_failures_naming_the_server(dns_server):
    dns_server.failing_zone("broken.test")
    run = DnsRun()
    broken = run.lookup("www.broken.test", "A")
    assert broken.status == SERVFAIL and broken.is_failure
    # The error names each try; on a busy machine a first try may time out before the server's answer.
    assert broken.error.endswith(f"127.0.0.1:{dns_server.port} answered SERVFAIL"), broken.error
    refused = run.lookup("elsewhere.test", "A")  # no zone of NSD's: it refuses
    assert refused.status == ERROR
    assert refused.error.endswith(f"127.0.0.1:{dns_server.port} answered REFUSED"), refused.error


def test_a_server_that_never_answers_is_a_timeout(settings, silent_dns_server):
    settings.DNS_NAMESERVERS = silent_dns_server.nameservers
    settings.DNS_TIMEOUT = 0.3
    answer = DnsRun().lookup("example.test", "A")
    assert (answer.status, answer.error, answer.is_failure) == (TIMEOUT, "no answer within 0.3 s", True)
    assert silent_dns_server.received >= 1


def test_the_next_resolver_answers_when_the_first_is_silent(example, silent_dns_server, monkeypatch):
    monkeypatch.setattr(resolver, "SERVER_TIMEOUT", 0.2)
    run = DnsRun(nameservers=silent_dns_server.nameservers + example.nameservers, timeout=3)
    assert run.lookup("example.test", "A").records == ("192.0.2.10",)
    assert silent_dns_server.received == 1 and run.queries_sent == 2


def test_a_run_asks_each_question_once_whatever_its_spelling(example):
    run = DnsRun(timeout=0.5)
    first = run.lookup("example.test", "A")
    assert first.status == OK and run.queries_sent == 1
    example.stop()
    # Same question (case, trailing dot and type spelling aside): answered from the run, nothing sent.
    assert run.lookup("EXAMPLE.Test.", "a") == first
    assert run.queries_sent == 1
    # A new question does go out, and finds the server gone.
    assert run.lookup("example.test", "MX").status == TIMEOUT
    assert run.queries_sent > 1


def test_a_new_run_asks_again(example):
    assert DnsRun().lookup("example.test", "A").records == ("192.0.2.10",)
    example.zone("example.test", ["@ A 192.0.2.99"])
    assert DnsRun().lookup("example.test", "A").records == ("192.0.2.99",)


def test_edns_brings_answers_over_512_bytes_in_one_query_and_larger_ones_come_over_tcp(dns_server):
    padding = "x" * 200
    dns_server.zone(
        "example.test",
        [f'mid TXT "{i} {padding}"' for i in range(4)] + [f'big TXT "{i} {padding}"' for i in range(10)],
    )
    run = DnsRun()
    mid = run.lookup("mid.example.test", "TXT")  # about 900 bytes: over plain DNS's 512, under EDNS's 1232
    assert (mid.status, len(mid.records), run.queries_sent) == (OK, 4, 1)
    big = run.lookup("big.example.test", "TXT")  # about 2,200 bytes: truncated over UDP, asked again over TCP
    assert (big.status, len(big.records), run.queries_sent) == (OK, 10, 3)
    assert big.records[0] == f"0 {padding}"


def test_a_dnsbl_listing_and_a_non_listing(dns_server):
    dns_server.zone("dnsbl.test", ["2.0.0.127 A 127.0.0.2", '2.0.0.127 TXT "listed: RFC 5782 test point"'])
    run = DnsRun()
    assert run.lookup(dnsbl_query_name("127.0.0.2", "dnsbl.test"), "A").records == ("127.0.0.2",)
    assert run.lookup(dnsbl_query_name("127.0.0.1", "dnsbl.test"), "A").status == NXDOMAIN


@pytest.mark.parametrize(
    "name, error",
    [
        ("", "no name given"),
        ("  ", "no name given"),
        ("a..example.test", "not a valid DNS name: A DNS label is empty."),
        (f"{'x' * 64}.example.test", "not a valid DNS name: A DNS label is > 63 octets long."),
    ],
)
def test_a_name_that_cannot_be_asked_is_an_error_and_sends_nothing(settings, name, error):
    settings.DNS_NAMESERVERS = [("127.0.0.1", 9)]  # never reached
    run = DnsRun()
    answer = run.lookup(name, "A")
    assert (answer.status, answer.error, run.queries_sent) == (ERROR, error, 0)


def test_an_unknown_record_type_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown DNS record type 'SFP'"):
        DnsRun(nameservers=[("127.0.0.1", 9)]).lookup("example.test", "SFP")


def test_without_a_configured_resolver_it_asks_the_nameservers_of_resolv_conf(tmp_path, monkeypatch):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch corp.example\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n")
    monkeypatch.setattr(resolver, "RESOLV_CONF", str(conf))
    assert resolver.system_nameservers() == [("192.0.2.53", 53), ("2001:db8::53", 53)]
    conf.write_text("search corp.example\n")
    answer = DnsRun(nameservers=[]).lookup("example.test", "A")
    assert answer.status == ERROR
    assert answer.error == f"no nameserver to ask: {conf} lists none (or set DOCKSPACE_DNS_RESOLVER)"
