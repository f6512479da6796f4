"""Pools: a domain (and a tier) sends through one pool, a pool with IPs cannot be removed, and which IPs a pool or a
domain sends through now (ACTIVE and WARMING, with weights; None without a pool)."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections

from accounts.authz import SYSTEM
from accounts.models import AuditEvent
from deliverability import ip_pools
from deliverability.ip_pools import RotationIp
from deliverability.models import IpPool
from deliverability.tests.factories import make_ip, make_pool, move
from deliverability.tests.races import hold_one_at, run_one_then_two
from mail.tests.factories import make_domain, make_tier

pytestmark = pytest.mark.django_db


def test_a_domain_is_in_at_most_one_pool():
    domain = make_domain("example.com")
    make_pool("bulk", domains=[domain])
    with pytest.raises(ValidationError) as e:
        make_pool("transactional", domains=[domain])
    message = e.value.message_dict["domains"][0]
    assert message.startswith("example.com already sends through pool bulk; a domain sends through one pool")
    assert not IpPool.objects.filter(name="transactional").exists()
    other = make_pool("transactional")
    with pytest.raises(ValidationError, match="already sends through pool bulk"):
        ip_pools.pool_update(pool=other, domains=[domain], actor=SYSTEM)
    assert list(other.domains.all()) == []
    # Taken out of bulk first, it may join the other pool.
    ip_pools.pool_update(pool=IpPool.objects.get(name="bulk"), domains=[], actor=SYSTEM)
    ip_pools.pool_update(pool=other, domains=[domain], actor=SYSTEM)
    assert list(other.domains.all()) == [domain]


def test_a_tier_is_in_at_most_one_pool():
    tier = make_tier()
    make_pool("bulk", tiers=[tier])
    with pytest.raises(ValidationError) as e:
        make_pool("other", tiers=[tier])
    assert "tier standard already sends through pool bulk" in e.value.message_dict["tiers"][0]


@pytest.mark.parametrize("name", ["", "Has Space", "-dash", "x" * 64, "under_score"])
def test_a_bad_pool_name_is_refused(name):
    with pytest.raises(ValidationError) as e:
        make_pool(name)
    assert "is not a pool name" in e.value.message_dict["name"][0]


def test_a_pool_with_ips_cannot_be_removed():
    pool = make_pool()
    ip = make_ip("192.0.2.9", pool=pool)
    with pytest.raises(ValidationError) as e:
        ip_pools.pool_remove(pool=pool, actor=SYSTEM)
    assert e.value.message_dict["name"] == ["pool bulk still has 1 IP(s) (192.0.2.9); move or remove them first."]
    move(ip, "RESTING")
    from deliverability import sending_ips

    sending_ips.ip_remove(ip=ip, actor=SYSTEM)
    ip_pools.pool_remove(pool=pool, actor=SYSTEM)
    assert not IpPool.objects.exists()
    assert AuditEvent.objects.filter(action="deliverability.ip_pool.remove", target_label="bulk").exists()


def test_rotation_lists_active_and_warming_ips_with_their_weights():
    pool = make_pool()
    make_ip("192.0.2.1", pool=pool, state="ACTIVE", weight=3)
    make_ip("192.0.2.2", pool=pool, weight=1)  # WARMING
    move(make_ip("192.0.2.3", pool=pool, state="ACTIVE"), "RETIRING")
    move(make_ip("192.0.2.4", pool=pool), "RESTING")
    make_ip("192.0.2.5", state="ACTIVE")  # in no pool
    assert [(ip.address, ip.weight, ip.state) for ip in ip_pools.pool_rotation_ips(pool)] == [
        ("192.0.2.1", 3, "ACTIVE"),
        ("192.0.2.2", 1, "WARMING"),
    ]


def test_a_domain_sends_through_its_own_pool_else_its_tiers_else_the_default_ip():
    tier = make_tier()
    own, by_tier, none = (
        make_domain("own.example", tier=tier),
        make_domain("tier.example", tier=tier),
        make_domain("plain.example"),
    )
    tier_pool, own_pool = make_pool("tier-pool", tiers=[tier]), make_pool("own-pool", domains=[own])
    make_ip("192.0.2.1", pool=tier_pool, state="ACTIVE", weight=2)
    make_ip("192.0.2.2", pool=own_pool, state="ACTIVE")
    assert ip_pools.ips_in_rotation_for_domain(own) == [
        RotationIp("192.0.2.2", "out-192-0-2-2.example.com", 1, "ACTIVE")
    ]
    assert [ip.address for ip in ip_pools.ips_in_rotation_for_domain(by_tier)] == ["192.0.2.1"]
    assert ip_pools.ips_in_rotation_for_domain(none) is None
    empty = make_domain("empty.example")
    make_pool("empty", domains=[empty])
    assert ip_pools.ips_in_rotation_for_domain(empty) == []


@pytest.mark.django_db(transaction=True)
def test_two_pools_taking_the_same_domain_at_once_are_checked_one_after_the_other(monkeypatch):
    """PostgreSQL only (SQLite runs one write transaction at a time): while pool one's change holds the domain, pool
    two's waits for it, then sees the domain taken."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): SQLite never runs two write transactions at once")
    domain = make_domain("example.com")
    one, two = make_pool("one"), make_pool("two")
    holding, release = hold_one_at(monkeypatch, ip_pools, "audit")  # pool one has written, not committed
    outcome = {}

    def change(pool):
        try:
            ip_pools.pool_update(pool=pool, domains=[domain], actor=SYSTEM)
            outcome[pool.name] = "done"
        except ValidationError as e:
            outcome[pool.name] = " ".join(e.messages)
        finally:
            connections.close_all()

    # Pool two's change runs until it is done (no lock taken: the race) or waits for a row lock.
    run_one_then_two(lambda: change(one), lambda: change(two), holding=holding, release=release)

    assert outcome["one"] == "done"
    assert outcome["two"].startswith("example.com already sends through pool one")
    assert [p.name for p in IpPool.objects.filter(domains=domain)] == ["one"]


def test_the_pool_services_ask_for_view_domain_when_the_domains_change_but_not_otherwise():
    from deliverability.tests.factories import staff_with

    pool = make_pool("bulk", domains=[make_domain("example.com")])
    other = make_domain("example.org")
    person = staff_with("deliverability.add_ippool", "deliverability.change_ippool")
    for call in (
        lambda: ip_pools.pool_add(name="new", domains=[other], actor=person),
        lambda: ip_pools.pool_update(pool=pool, domains=[other], actor=person),
    ):
        with pytest.raises(ValidationError, match="'mail.view_domain'"):
            call()
    assert list(pool.domains.values_list("name", flat=True)) == ["example.com"]
    # The positive control: the same domains again (the admin form sends them), or a description, need nothing more.
    ip_pools.pool_update(pool=pool, domains=list(pool.domains.all()), description="bulk mail", actor=person)
    assert IpPool.objects.get(pk=pool.pk).description == "bulk mail"
