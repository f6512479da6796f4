"""manage.py group: groups of people, and the distribution-list line a list address puts in postfix-virtual.cf."""

import json

import pytest

from accounts.models import AuditEvent, User
from mail import services
from mail.dms.sync import dms_sync
from mail.models import Group
from mail.tests.factories import (
    dms_lines,
    make_domain,
    make_mailbox,
    refused,
    run,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    make_domain("example.com")
    return [make_mailbox(address).person for address in ("ann@example.com", "bob@example.com", "cy@example.com")]


def list_line(settings, address):
    dms_sync()
    lines = [line for line in dms_lines(settings, "postfix-virtual.cf") if line.startswith(address + " ")]
    return lines[0] if lines else None


def members(name):
    return sorted(Group.objects.get(name=name).members.values_list("email", flat=True))


def test_add_with_an_address_and_members_renders_a_list_line(people, settings):
    out = run(
        "group",
        "add",
        "team",
        "--address",
        "Team@Example.com",
        "--member",
        "bob@example.com",
        "--member",
        "ANN@example.com",
    )
    assert out.strip() == "Created group team with list address team@example.com, 2 member(s)."
    assert list_line(settings, "team@example.com") == "team@example.com ann@example.com,bob@example.com"
    event = AuditEvent.objects.get(action="mail.group.add")
    assert (event.actor_label, event.target_label) == ("manage.py group", "team")


def test_a_group_without_an_address_writes_nothing_to_dms(people, settings):
    run("group", "add", "admins", "--member", "ann@example.com")
    assert members("admins") == ["ann@example.com"]
    dms_sync()
    assert not any("ann@example.com," in line for line in dms_lines(settings, "postfix-virtual.cf"))


def test_a_member_without_a_mailbox_is_in_the_group_but_not_on_the_list(people, settings):
    User.objects.create_user("guest@elsewhere.org")
    run(
        "group",
        "add",
        "team",
        "--address",
        "team@example.com",
        "--member",
        "guest@elsewhere.org",
        "--member",
        "cy@example.com",
    )
    assert members("team") == ["cy@example.com", "guest@elsewhere.org"]
    assert list_line(settings, "team@example.com") == "team@example.com cy@example.com"


def test_update_adds_and_removes_members_and_the_list_line_follows(people, settings):
    run("group", "add", "team", "--address", "team@example.com", "--member", "ann@example.com")
    run("group", "update", "team", "--add", "bob@example.com", "--add", "cy@example.com", "--remove", "ann@example.com")
    assert members("team") == ["bob@example.com", "cy@example.com"]
    assert list_line(settings, "team@example.com") == "team@example.com bob@example.com,cy@example.com"


def test_update_renames_and_drops_the_address(people, settings):
    run("group", "add", "team", "--address", "team@example.com", "--member", "ann@example.com")
    run("group", "update", "team", "--rename", "crew", "--no-address")
    group = Group.objects.get()
    assert (group.name, group.list_address) == ("crew", None)
    assert list_line(settings, "team@example.com") is None


def test_update_moves_the_list_to_a_new_address(people, settings):
    run("group", "add", "team", "--address", "team@example.com", "--member", "ann@example.com")
    run("group", "update", "team", "--address", "crew@example.com")
    assert list_line(settings, "team@example.com") is None
    assert list_line(settings, "crew@example.com") == "crew@example.com ann@example.com"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--address", "team@unmanaged.org"], "address: unmanaged.org is not a domain Dockspace manages"),
        (["--address", "bob@example.com"], "address: bob@example.com is already a mailbox."),
        (["--address", "te am@example.com"], "address: spaces, line breaks and control characters are not allowed"),
        (["--address", "team|x@example.com"], "address: a '|' is not allowed"),
        (["--member", "ghost@example.com"], "members: ghost@example.com is not a person in Dockspace."),
        (["--member", "not-an-address"], "members: 'not-an-address' is not an email address"),
    ],
)
def test_add_refuses_bad_input_naming_the_field(people, args, message):
    assert message in refused("group", "add", "team", *args)


def test_add_refuses_a_name_already_used_in_another_case(people):
    run("group", "add", "Team")
    assert refused("group", "add", "team") == "name: a group named 'team' already exists."


def test_update_refuses_a_member_that_would_close_a_forwarding_loop(people):
    run("group", "add", "team", "--address", "team@example.com", "--member", "ann@example.com")
    services.alias_create(address="bob@example.com", targets=["team@example.com"], keep_copy=True)
    message = refused("group", "update", "team", "--add", "bob@example.com")
    assert "forwarding loop: team@example.com -> bob@example.com -> team@example.com." in message


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "nothing to change"),
        (["--address", "x@example.com", "--no-address"], "--address and --no-address cannot be used together."),
        (["--add", "ghost@example.com"], "members: ghost@example.com is not a person in Dockspace."),
    ],
)
def test_update_refuses_bad_options_and_changes_nothing(people, args, message):
    run("group", "add", "team", "--member", "ann@example.com")
    assert message in refused("group", "update", "team", *args)


def test_update_refuses_an_empty_address_and_keeps_the_list(people, settings):
    run("group", "add", "team", "--address", "team@example.com", "--member", "ann@example.com")

    message = refused("group", "update", "team", "--address", "")

    assert message == (
        "--address: an empty list address is not allowed; give one like list@example.com, or --no-address to "
        "stop being a distribution list."
    )
    assert list_line(settings, "team@example.com") == "team@example.com ann@example.com"
    run("group", "update", "team", "--no-address")  # positive control: the explicit way to drop it
    assert Group.objects.get(name="team").list_address is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["add", "team", "--address", ""], "--address: an empty list address is not allowed; leave --address out"),
        (["update", "team", "--rename", ""], "--rename: a group name cannot be empty."),
        (["update", "team", "--rename", "  ", "--description", "x"], "--rename: a group name cannot be empty."),
        (["update", "team", "--address", "", "--no-address"], "--address and --no-address cannot be used together."),
    ],
)
def test_an_empty_value_given_on_purpose_is_refused_not_ignored(people, args, message):
    if args[0] == "update":
        run("group", "add", "team", "--address", "team@example.com")
    assert message in refused("group", *args)


def test_update_with_an_empty_description_clears_it(people):
    run("group", "add", "team", "--description", "All of us")
    run("group", "update", "team", "--description", "")
    assert Group.objects.get(name="team").description == ""


def test_list_and_show_json_describe_the_groups(people):
    run("group", "add", "team", "--address", "team@example.com", "--member", "bob@example.com", "--description", "All")
    run("group", "add", "admins", "--member", "ann@example.com")
    rows = json.loads(run("group", "list", "--json"))
    assert [(r["name"], r["address"], r["members"]) for r in rows] == [
        ("admins", None, ["ann@example.com"]),
        ("team", "team@example.com", ["bob@example.com"]),
    ]
    assert json.loads(run("group", "show", "team", "--json")) == {
        "name": "team",
        "description": "All",
        "address": "team@example.com",
        "members": ["bob@example.com"],
    }


def test_a_group_is_found_by_its_name_in_any_case(people):
    run("group", "add", "Team", "--member", "ann@example.com")
    assert json.loads(run("group", "show", "team", "--json"))["name"] == "Team"
    run("group", "update", "TEAM", "--add", "bob@example.com")
    assert members("Team") == ["ann@example.com", "bob@example.com"]


def test_remove_deletes_the_group_and_its_list_line_but_not_the_people(people, settings):
    run("group", "add", "team", "--address", "team@example.com", "--member", "ann@example.com")
    run("group", "remove", "team")
    assert not Group.objects.exists()
    assert User.objects.filter(email="ann@example.com").exists()
    assert list_line(settings, "team@example.com") is None
    assert refused("group", "remove", "team") == "NAME: no group 'team'."
