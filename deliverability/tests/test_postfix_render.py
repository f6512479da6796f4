"""The pool plumbing's pure renderers: which domain maps to which pool, the weighted rotation, the transports, and
what cannot be written (table-driven, no database)."""

import pytest

from deliverability.postfix_transports import (
    PoolIp,
    PoolRoute,
    main_lines,
    map_lines,
    master_entry,
    parse_main,
    parse_map,
    parse_user_patches,
    rotation,
    route_outcome,
    transport_name,
    user_patches_lines,
)

A = PoolIp("192.0.2.10", "out1.example.com", 1)
B = PoolIp("192.0.2.11", "out2.example.com", 1)
V6 = PoolIp("2001:db8::1", "out6.example.com", 1)
MAP = "/tmp/docker-mailserver/postfix-sender-pools.cf"


@pytest.mark.parametrize(
    ("address", "name"),
    [("192.0.2.10", "out-192-0-2-10"), ("2001:db8::1", "out-2001-db8--1"), ("::ffff:1.2.3.4", "out---ffff-102-304")],
)
def test_each_ip_has_a_transport_named_after_it(address, name):
    assert transport_name(address) == name


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ((1, 1), ["out-192-0-2-10", "out-192-0-2-11"]),
        ((1, 3), ["out-192-0-2-10"] + ["out-192-0-2-11"] * 3),
        ((20, 40), ["out-192-0-2-10"] + ["out-192-0-2-11"] * 2),  # divided by the common divisor
        ((5, 5), ["out-192-0-2-10", "out-192-0-2-11"]),
    ],
)
def test_the_rotation_repeats_each_ip_by_its_weight(weights, expected):
    ips = [PoolIp(A.address, A.helo_name, weights[0]), PoolIp(B.address, B.helo_name, weights[1])]
    assert rotation(ips) == expected


def test_the_map_names_each_pooled_domains_pool():
    routes = [PoolRoute("bulk", ("a.example", "b.example"), (A, B)), PoolRoute("solo", ("c.example",), (V6,))]
    assert list(map_lines(routes)) == ["@a.example bulk", "@b.example bulk", "@c.example solo"]
    assert parse_map("\n".join(map_lines(routes)), "f") == (
        [("a.example", "bulk"), ("b.example", "bulk"), ("c.example", "solo")],
        [],
    )


def test_main_cf_routes_a_pool_through_a_weighted_randmap_and_a_single_ip_directly():
    routes = [
        PoolRoute("bulk", ("a.example",), (A, PoolIp(B.address, B.helo_name, 2))),
        PoolRoute("solo", ("c.example",), (V6,)),
    ]
    entries, problems = parse_main("\n".join(main_lines(routes)), "f")
    assert problems == []
    assert entries == [
        (
            "sender_dependent_default_transport_maps",
            f"pipemap:{{texthash:{MAP}, inline:{{bulk=bulk}}, randmap:{{out-192-0-2-10, out-192-0-2-11, "
            f"out-192-0-2-11}}}}, pipemap:{{texthash:{MAP}, inline:{{solo=out-2001-db8--1}}}}",
        )
    ]


def test_without_pools_main_cf_empties_the_parameter():
    # A restarted container keeps the main.cf of its last start: the parameter must be reset, not left out.
    assert parse_main("\n".join(main_lines([])), "f") == ([("sender_dependent_default_transport_maps", "")], [])


def test_a_pool_without_an_ip_in_rotation_leaves_its_domains_on_the_default_transport():
    routes = [PoolRoute("empty", ("a.example",), ())]
    assert parse_map("\n".join(map_lines(routes)), "f") == ([], [])
    assert "pool empty has no IP in rotation: its domains (a.example)" in "\n".join(map_lines(routes))
    assert parse_main("\n".join(main_lines(routes)), "f")[0] == [("sender_dependent_default_transport_maps", "")]


def test_each_ip_in_rotation_gets_one_smtp_service_bound_to_it_with_its_helo_name_and_log_tag():
    routes = [PoolRoute("bulk", ("a.example",), (A, V6)), PoolRoute("idle", (), (A,))]
    assert parse_user_patches("\n".join(user_patches_lines(routes)), "f") == (
        [
            "out-192-0-2-10 unix - - n - - smtp -o syslog_name=postfix/out-192-0-2-10 -o inet_protocols=ipv4 "
            "-o smtp_bind_address=192.0.2.10 -o smtp_helo_name=out1.example.com",
            "out-2001-db8--1 unix - - n - - smtp -o syslog_name=postfix/out-2001-db8--1 "
            "-o smtp_address_preference=ipv6 -o smtp_bind_address6=2001:db8::1 -o smtp_helo_name=out6.example.com",
        ],
        [],
    )
    assert master_entry(A).startswith("out-192-0-2-10 unix")


@pytest.mark.parametrize(
    ("ip", "message"),
    [
        (PoolIp("192.0.2.10", "out1.example.com -o x=1", 1), "is not a host name"),
        (PoolIp("192.0.2.10", "$myhostname", 1), "is not a host name"),
        (PoolIp("2001:DB8::1", "out6.example.com", 1), "is not stored normalised"),
        (PoolIp("not-an-ip", "out6.example.com", 1), "is not an IP address"),
        (PoolIp("2001:db8::1%x -o content_filter=evil:", "out6.example.com", 1), "has a %zone"),
        (PoolIp("fe80::1%eth0", "out6.example.com", 1), "has a %zone"),
    ],
)
def test_an_ip_that_would_break_a_file_is_left_out_of_every_file_and_reported(ip, message):
    routes = [PoolRoute("bulk", ("a.example",), (A, ip))]
    reported = []
    main = "\n".join(main_lines(routes, reported.append))
    script = "\n".join(user_patches_lines(routes, reported.append))
    assert len(reported) == 1 and message in reported[0]  # once, by main.cf
    assert "randmap" not in main and "inline:{bulk=out-192-0-2-10}" in main
    assert len(parse_user_patches(script, "f")[0]) == 1
    with pytest.raises(ValueError, match=message):  # a preview raises it
        list(main_lines(routes))
    # The positive control: the same pool with good values keeps both IPs.
    good = "\n".join(main_lines([PoolRoute("bulk", ("a.example",), (A, B))]))
    assert "randmap:{out-192-0-2-10, out-192-0-2-11}" in good


def test_a_domain_that_would_break_the_map_is_left_out_and_reported():
    reported = []
    lines = list(map_lines([PoolRoute("bulk", ("a.example", "bad domain"), (A,))], reported.append))
    assert lines == ["@a.example bulk"]
    assert reported == [
        "domain 'bad domain' cannot be written to postfix-sender-pools.cf: it keeps the default transport"
    ]


def test_parsing_never_raises_on_a_hand_written_file():
    assert parse_user_patches("postconf -M 'unbalanced\n", "f") == ([], [])
    entries, problems = parse_main("  orphan continuation\nnot a setting\n", "f")
    assert entries == [] and [p.reason for p in problems] == [
        "a continuation line with no parameter before it",
        "expected parameter = value",
    ]
    assert parse_map("example.com bulk\n", "f")[1][0].reason == "expected @domain pool"


BAD_IP = PoolIp("192.0.2.99", "bad helo", 1)


@pytest.mark.parametrize(
    "route",
    [
        PoolRoute("bulk", ("a.example", "b.example"), (A, PoolIp(B.address, B.helo_name, 3))),
        PoolRoute("bulk", ("a.example", "bad domain"), (A, BAD_IP)),
        PoolRoute("bulk", ("a.example",), (BAD_IP,)),
        PoolRoute("bulk", ("a.example",), ()),
        PoolRoute("bulk", (), (A, V6)),
        PoolRoute("Bad Pool", ("a.example",), (A,)),
    ],
)
def test_the_outcome_of_a_pool_is_what_its_files_say(route):
    """route_outcome (the admin's and `ip_pool routing`'s account of a pool) against the rendered files."""
    outcome = route_outcome(route)
    mapped = [domain for domain, _pool in parse_map("\n".join(map_lines([route], lambda _m: None)), "f")[0]]
    entries = parse_user_patches("\n".join(user_patches_lines([route], lambda _m: None)), "f")[0]
    main = dict(parse_main("\n".join(main_lines([route], lambda _m: None)), "f")[0])[
        "sender_dependent_default_transport_maps"
    ]
    assert list(outcome.routed) == mapped
    assert sorted(outcome.routed + tuple(domain for domain, _why in outcome.default)) == sorted(route.domains)
    assert [transport_name(ip.address) for ip, _share in outcome.shares] == [entry.split()[0] for entry in entries]
    assert {ip.address for ip, _why in outcome.left_out} | {ip.address for ip, _s in outcome.shares} == {
        ip.address for ip in route.ips
    }
    if outcome.routed and len(outcome.shares) > 1:  # each share is how often the randmap names the transport
        picks = main.split("randmap:{")[1].rstrip("}").split(", ")
        for ip, share in outcome.shares:
            assert picks.count(transport_name(ip.address)) / len(picks) == share
    assert (main != "") == bool(outcome.routed)


def test_the_outcome_says_why_each_domain_and_ip_is_left_out():
    outcome = route_outcome(PoolRoute("bulk", ("a.example", "bad domain"), (BAD_IP,)))
    assert outcome.default == (
        ("a.example", "pool bulk has no IP in rotation that can be written: it keeps the default transport"),
        (
            "bad domain",
            "domain 'bad domain' cannot be written to postfix-sender-pools.cf: it keeps the default transport",
        ),
    )
    assert outcome.left_out == (
        (BAD_IP, "sending IP 192.0.2.99: HELO name 'bad helo' is not a host name: left out of the Postfix transports"),
    )
    shares = route_outcome(PoolRoute("bulk", ("a.example",), (A, PoolIp(B.address, B.helo_name, 3)))).shares
    assert [share for _ip, share in shares] == [0.25, 0.75]
