import pytest
from django.core.exceptions import ValidationError

from mail import services
from mail.models import Alias, Tier

pytestmark = pytest.mark.django_db


@pytest.fixture
def domain():
    d = services.domain_create(name="example.com")
    services.mailbox_create(address="bob@example.com")
    services.mailbox_create(address="al@example.com")
    return d


def _error(exc):
    return " ".join(exc.value.messages)


def test_an_alias_forwards_to_local_and_outside_targets_in_order(domain):
    alias = services.alias_create(
        address="Info@Example.com", targets=["AL@example.com", "x@gmail.com", "al@example.com"]
    )
    assert alias.address == "info@example.com"
    assert alias.target_list == ["al@example.com", "x@gmail.com"]


def test_a_catch_all_is_created_for_the_domain(domain):
    alias = services.alias_create(address="@example.com", targets=["bob@example.com"])
    assert alias.is_catch_all and alias.address == "@example.com"


def test_keep_a_copy_needs_the_mailbox_and_is_the_only_way_to_share_an_address(domain):
    with pytest.raises(ValidationError) as e:
        services.alias_create(address="bob@example.com", targets=["x@gmail.com"])
    assert "is already a mailbox (to forward and keep a copy" in _error(e)
    alias = services.alias_create(address="bob@example.com", targets=["x@gmail.com"], keep_copy=True)
    assert alias.keep_copy
    with pytest.raises(ValidationError) as e:
        services.alias_create(address="nobody@example.com", targets=["x@gmail.com"], keep_copy=True)
    assert "keep a copy needs a mailbox" in _error(e)


@pytest.mark.parametrize(
    "address, targets, message",
    [
        ("info@other.org", ["bob@example.com"], "other.org is not a domain Dockspace manages"),
        ("info@example.com", ["not an address"], "spaces"),
        ("info@example.com", ["@example.com"], "is not an address"),
        ("info@example.com", ["bob@example.com,al@example.com"], "','"),
        ("info@example.com", ["ghost@example.com"], "is on a managed domain but is not a mailbox"),
        ("info@example.com", [], "at least one target"),
        ("info@example.com", ["info@example.com"], "cannot forward to itself"),
        ("in|fo@example.com", ["bob@example.com"], "'|'"),
    ],
)
def test_bad_aliases_are_refused_and_nothing_is_written(domain, address, targets, message):
    with pytest.raises(ValidationError) as e:
        services.alias_create(address=address, targets=targets)
    assert message in _error(e)
    assert Alias.objects.count() == 0


def test_an_alias_never_brings_in_a_new_domain(domain):
    with pytest.raises(ValidationError):
        services.alias_create(address="@newdomain.org", targets=["bob@example.com"])
    from mail.models import Domain

    assert list(Domain.objects.values_list("name", flat=True)) == ["example.com"]


def test_loops_are_refused_naming_the_path(domain):
    services.alias_create(address="a@example.com", targets=["bob@example.com"])
    services.alias_create(address="b@example.com", targets=["a@example.com"])
    a = Alias.objects.get(address="a@example.com")
    with pytest.raises(ValidationError) as e:
        services.alias_update(alias=a, targets=["b@example.com"])
    assert "forwarding loop: a@example.com -> b@example.com -> a@example.com" in _error(e)
    assert Alias.objects.get(address="a@example.com").target_list == ["bob@example.com"]


def test_a_loop_through_a_list_is_refused(domain):
    services.group_create(name="team", address="team@example.com", members=["bob@example.com"])
    services.alias_create(address="bob-fwd@example.com", targets=["team@example.com"])
    keep = services.alias_create(address="bob@example.com", targets=["x@gmail.com"], keep_copy=True)
    with pytest.raises(ValidationError) as e:
        services.alias_update(alias=keep, targets=["bob-fwd@example.com"])
    assert "loop" in _error(e)


def test_the_tier_caps_aliases(domain):
    tier = Tier.objects.create(name="tiny", max_aliases=1)
    services.domain_update(domain=domain, tier=tier)
    services.alias_create(address="a@example.com", targets=["bob@example.com"])
    with pytest.raises(ValidationError) as e:
        services.alias_create(address="@example.com", targets=["bob@example.com"])
    assert "at most 1 aliases on example.com (max aliases)" in _error(e)


def test_groups_have_members_and_an_optional_list_address(domain):
    group = services.group_create(name="Sales", address="Sales@example.com", members=["bob@example.com"])
    assert group.list_address == "sales@example.com"
    services.group_update(group=group, add=["al@example.com"], remove=["bob@example.com"])
    assert [p.email for p in group.members.all()] == ["al@example.com"]
    with pytest.raises(ValidationError) as e:
        services.group_create(name="sales")
    assert "already exists" in _error(e)
    with pytest.raises(ValidationError) as e:
        services.group_create(name="other", address="bob@example.com")
    assert "already a mailbox" in _error(e)
    with pytest.raises(ValidationError) as e:
        services.group_create(name="ghosts", members=["ghost@example.com"])
    assert "ghost@example.com is not a person" in _error(e)
