"""manage.py dnsbl_check (text, --json, exit 1 when listed, standby applied, --as refused) and manage.py dnsbl_list
(add, list --json without the key, update, remove, bad input named, --as refused)."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from accounts.tests.factories import UserFactory
from deliverability.models import Dnsbl, DnsblResult, SendingIp
from deliverability.tests.dnsbl_lists import make_list, only_test_lists, serve_ip_list
from deliverability.tests.factories import make_ip
from mail.tests.factories import run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _test_lists_only():
    only_test_lists()


def failing(*args, stdin=None):
    out = io.StringIO()
    with pytest.raises(CommandError) as failed:
        call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue(), failed.value


def test_a_listed_ip_exits_1_and_is_rested(dns_server, settings):
    settings.SENDING_IPS = []
    serve_ip_list(dns_server, {"192.0.2.10": "127.0.0.2"})
    make_list()
    make_ip("192.0.2.10", state=SendingIp.ACTIVE)

    out, error = failing("dnsbl_check", "192.0.2.10")

    assert (str(error), error.returncode) == ("listed: 192.0.2.10.", 1)
    assert "192.0.2.10" in out and "listed  127.0.0.2 SBL" in out and "moved to RESTING" in out
    assert SendingIp.objects.get().state == SendingIp.RESTING


def test_json_of_a_clear_ip_exits_0(dns_server, settings):
    settings.SENDING_IPS = []
    serve_ip_list(dns_server)
    make_list(action=Dnsbl.ALERT)
    data = json.loads(run("dnsbl_check", "192.0.2.99", "--json"))
    assert [(r["subject"], r["status"]) for r in data["results"]] == [("192.0.2.99", "clear")]
    assert data["broken_lists"] == []


def test_a_broken_list_is_one_line_and_its_answers_no_rows(dns_server, settings):
    settings.SENDING_IPS = []
    dns_server.failing_zone("broken.test")
    make_list("broken.test", action=Dnsbl.ALERT)
    serve_ip_list(dns_server)
    make_list(action=Dnsbl.ALERT)
    make_ip("192.0.2.10")
    make_ip("192.0.2.11")

    out = run("dnsbl_check")  # exit 0: bl.test answered

    lines = out.splitlines()
    assert [line.split()[:3] for line in lines[:2]] == [
        ["192.0.2.10", "bl.test", "clear"],
        ["192.0.2.11", "bl.test", "clear"],
    ]
    assert len(lines) == 3 and lines[2].startswith("broken.test: broken (the test point did not answer (")
    assert lines[2].endswith("); its answers were ignored")
    assert "error" not in out.replace("did not answer", "")  # no error row per IP for the broken list
    data = json.loads(run("dnsbl_check", "--json"))
    assert {r["list"] for r in data["results"]} == {"bl.test"}
    assert [b["list"] for b in data["broken_lists"]] == ["broken.test"]


def test_every_list_broken_exits_2_saying_nothing_could_be_checked(dns_server, settings):
    settings.SENDING_IPS = []
    dns_server.failing_zone("broken.test")
    make_list("broken.test", action=Dnsbl.ALERT)
    make_ip("192.0.2.10")

    out, error = failing("dnsbl_check")

    assert error.returncode == 2
    assert str(error) == "nothing could be checked reliably: every list asked is broken (broken.test)."
    assert out.startswith("broken.test: broken (") and "192.0.2.10" not in out


def test_every_answer_an_error_exits_2(dns_server, settings):
    settings.SENDING_IPS = []
    serve_ip_list(dns_server, {"192.0.2.10": "127.255.255.254", "192.0.2.11": "127.255.255.254"})
    make_list(action=Dnsbl.ALERT)

    out, error = failing("dnsbl_check", "192.0.2.10", "192.0.2.11")

    assert (str(error), error.returncode) == (
        "nothing could be checked reliably: every answer is an error (2 error(s)).",
        2,
    )
    assert "192.0.2.10" in out and "error   127.255.255.254" in out
    # The positive control: one answer that is not an error is enough (exit 0).
    assert "clear" in run("dnsbl_check", "192.0.2.10", "192.0.2.12")


@pytest.mark.parametrize(
    "subject, rule",
    [
        ("2001:db8::1%x", "IP|DOMAIN: give the IPv6 address without a %zone"),
        ("fe80::1%eth0", "IP|DOMAIN: give the IPv6 address without a %zone"),
        ("foo bar", "IP|DOMAIN: 'foo bar' is neither an IP address nor a domain name"),
        ("a" * 300, "IP|DOMAIN: 'aaaa"),
        (" ", "IP|DOMAIN: give an IP address or a domain name"),
    ],
)
def test_dnsbl_check_refuses_a_bad_subject_naming_the_argument_and_stores_nothing(dns_server, subject, rule):
    serve_ip_list(dns_server)
    make_list(action=Dnsbl.ALERT)
    _, error = failing("dnsbl_check", "192.0.2.99", subject)
    assert str(error).startswith(rule) and error.returncode == 1
    assert not DnsblResult.objects.exists()
    # The positive control: the good subject alone is asked and stored.
    run("dnsbl_check", "192.0.2.99")
    assert list(DnsblResult.objects.values_list("subject", flat=True)) == ["192.0.2.99"]


def test_dnsbl_check_as_staff_without_the_permission_is_refused(dns_server):
    UserFactory(email="ops@example.com", is_staff=True)
    _, error = failing("dnsbl_check", "--as", "ops@example.com")
    assert "permission" in str(error)


def test_dnsbl_list_add_list_update_remove_and_the_key_is_never_shown(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("abcdef1234567890\n"))
    run(
        "dnsbl_list",
        "add",
        "Example",
        "bl.example.net",
        "--codes",
        '{"127.0.0.2": "listed"}',
        "--action",
        "standby",
        "--key-zone",
        "dq.example.net",
        "--access-key-stdin",
    )
    stored = Dnsbl.objects.get(zone="bl.example.net")
    assert stored.access_key_encrypted and "abcdef1234567890" not in stored.access_key_encrypted
    listed = run("dnsbl_list", "list", "--json")
    assert "abcdef1234567890" not in listed
    row = next(r for r in json.loads(listed) if r["zone"] == "bl.example.net")
    assert (row["access_key"], row["action"], row["health"]) == ("set (stored encrypted)", "standby", "untested")

    run("dnsbl_list", "update", "Example", "--action", "alert", "--disable")
    stored.refresh_from_db()
    assert (stored.action, stored.is_enabled) == ("alert", False)
    run("dnsbl_list", "remove", "Example")
    assert not Dnsbl.objects.filter(zone="bl.example.net").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--codes", '{"127.0.0.1": "x"}'], "an error answer, never a listing"),
        (["--codes", '{"10.0.0.2": "x"}'], "outside 127.0.0.0/8"),
        (["--codes", "nope"], "--codes: JSON"),
        (["--codes", '{"127.0.0.2": "x"}', "--kind", "domain", "--action", "standby"], "cannot put an IP on standby"),
        (["--codes", '{"127.0.0.2": "x"}', "--access-key-env", "SECRET_KEY"], "starting with DOCKSPACE_DNSBL_"),
        (["--codes", '{"bit:\u0668": "x"}'], "'bit:\u0668': a bit is 2, 4, 8, 16, 32, 64 or 128"),  # Arabic-Indic 8
        (["--codes", '{"127.0.0.2": "x"}', "--name-override", "\u200b"], "no invisible or control characters"),
    ],
)
def test_dnsbl_list_add_refuses_bad_input_naming_the_rule(args, message):
    before = Dnsbl.objects.count()
    name = "Bad"
    if "--name-override" in args:
        index = args.index("--name-override")
        name, args = args[index + 1], args[:index] + args[index + 2 :]
    _, error = failing("dnsbl_list", "add", name, "bad.example.net", *args)
    assert message in str(error)
    assert Dnsbl.objects.count() == before


def test_dnsbl_list_as_staff_without_permission_is_refused_and_with_it_allowed():
    from django.contrib.auth.models import Permission

    person = UserFactory(email="ops@example.com", is_staff=True)
    _, error = failing("dnsbl_list", "list", "--as", "ops@example.com")
    assert "permission" in str(error)
    person.user_permissions.add(Permission.objects.get(codename="view_dnsbl"))
    assert "Spamhaus ZEN" in run("dnsbl_list", "list", "--as", "ops@example.com")


def _subcommand_parser(name):
    from deliverability.management.commands.dnsbl_list import Command

    parser = Command().create_parser("manage.py", "dnsbl_list")
    subparsers = next(a for a in parser._actions if a.dest == "action_name")
    return subparsers.choices[name]


@pytest.mark.parametrize("name", ["add", "update"])
def test_dnsbl_list_add_and_update_explain_every_argument(name):
    parser = _subcommand_parser(name)
    unexplained = [
        action.option_strings[0] if action.option_strings else action.dest
        for action in parser._actions
        if action.dest != "help" and not action.help
    ]
    assert unexplained == []
    text = " ".join(parser.format_help().split())
    if name == "add":
        assert "Default: ip." in text and "Default: alert." in text
    else:
        assert "Empty stdin (</dev/null) removes the stored key." in text


def test_dnsbl_list_update_removes_a_stored_key_from_empty_stdin_and_a_variable_with_an_empty_name(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("abcdef1234567890\n"))
    run("dnsbl_list", "add", "Example", "bl.example.net", "--codes", '{"127.0.0.2": "listed"}')
    run("dnsbl_list", "update", "Example", "--key-zone", "dq.example.net", "--access-key-stdin")
    assert Dnsbl.objects.get(name="Example").access_key_encrypted

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    run("dnsbl_list", "update", "Example", "--access-key-stdin")
    run("dnsbl_list", "update", "Example", "--access-key-env", "DOCKSPACE_DNSBL_EXAMPLE")
    assert _key_state("Example").startswith("not set: DOCKSPACE_DNSBL_EXAMPLE")
    run("dnsbl_list", "update", "Example", "--access-key-env", "")

    stored = Dnsbl.objects.get(name="Example")
    assert (stored.access_key_encrypted, stored.access_key_env) == ("", "")
    assert _key_state("Example") == "none"


def _key_state(name):
    return next(r for r in json.loads(run("dnsbl_list", "list", "--json")) if r["name"] == name)["access_key"]


def test_dnsbl_list_add_and_update_say_the_key_state(monkeypatch):
    add = ["dnsbl_list", "add", "Example", "bl.example.net", "--codes", '{"127.0.0.2": "listed"}']
    assert run(*add).splitlines()[1:] == ["access key: none"]
    monkeypatch.setattr("sys.stdin", io.StringIO("abcdef1234567890\n"))
    out = run("dnsbl_list", "update", "Example", "--key-zone", "dq.example.net", "--access-key-stdin")
    assert out.splitlines()[1:] == ["access key: set (stored encrypted)"]

    # A variable replaces the stored key as the key used; the service keeps the stored key, and the command says so.
    out = run("dnsbl_list", "update", "Example", "--access-key-env", "DOCKSPACE_DNSBL_EXAMPLE")
    assert out.splitlines()[1:] == [
        "access key: not set: DOCKSPACE_DNSBL_EXAMPLE is not set in this process",
        "the stored key is no longer used (it is kept); the key now comes from DOCKSPACE_DNSBL_EXAMPLE "
        "(--access-key-env '' uses the stored key again, --access-key-stdin </dev/null removes it)",
    ]
    assert Dnsbl.objects.get(name="Example").access_key_encrypted  # what the message says: kept
    monkeypatch.setenv("DOCKSPACE_DNSBL_EXAMPLE", "zyxw98765432")
    assert run("dnsbl_list", "update", "Example", "--action", "alert").splitlines()[1:] == [
        "access key: set (from DOCKSPACE_DNSBL_EXAMPLE)"
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("abcdef1234567891\n"))
    assert run("dnsbl_list", "update", "Example", "--access-key-stdin").splitlines()[1:] == [
        "access key: set (from DOCKSPACE_DNSBL_EXAMPLE)",
        "the key just stored is not used while the key comes from DOCKSPACE_DNSBL_EXAMPLE (--access-key-env '' uses "
        "it)",
    ]
    assert run("dnsbl_list", "update", "Example", "--access-key-env", "").splitlines()[1:] == [
        "access key: set (stored encrypted)"
    ]


def test_dnsbl_list_update_refuses_enable_with_disable():
    run("dnsbl_list", "add", "Example", "bl.example.net", "--codes", '{"127.0.0.2": "listed"}', "--disable")
    _, error = failing("dnsbl_list", "update", "Example", "--enable", "--disable")
    assert "argument --disable: not allowed with argument --enable" in str(error)
    assert Dnsbl.objects.get(name="Example").is_enabled is False
    # The positive control: either alone is taken.
    run("dnsbl_list", "update", "Example", "--enable")
    assert Dnsbl.objects.get(name="Example").is_enabled is True


def test_dnsbl_list_help_states_the_key_rule():
    for name in ("add", "update"):
        text = " ".join(_subcommand_parser(name).format_help().split())
        assert "(8 to 64 lower-case letters and digits)" in text


def test_a_full_check_names_every_ip_and_domain_so_it_needs_the_permissions_to_view_them(dns_server, settings):
    from django.contrib.auth.models import Permission

    settings.SENDING_IPS = []
    only_test_lists()
    serve_ip_list(dns_server)
    make_list(action=Dnsbl.ALERT)
    make_ip("192.0.2.10", state=SendingIp.ACTIVE)
    runner = UserFactory(email="runner@example.com", is_staff=True)
    runner.user_permissions.add(Permission.objects.get(codename="run_dnsbl_check"))

    _, error = failing("dnsbl_check", "--json", "--as", "runner@example.com")
    assert "you do not have the permission 'deliverability.view_sendingip'" in str(error)
    assert "192.0.2.10" not in str(error) and not DnsblResult.objects.exists()
    # A subject they name themselves is checked (they learn only about what they asked).
    assert "192.0.2.99" in run("dnsbl_check", "192.0.2.99", "--as", "runner@example.com")
    # The positive control: with both view permissions the full check runs and names the IP.
    runner.user_permissions.add(
        Permission.objects.get(codename="view_sendingip"),
        Permission.objects.get(content_type__app_label="mail", codename="view_domain"),
    )
    assert "192.0.2.10" in run("dnsbl_check", "--as", "runner@example.com")


def test_an_ipv4_mapped_default_ip_is_watched_under_its_ipv4_spelling(settings):
    import ipaddress

    from deliverability import dnsbl

    settings.SENDING_IPS = [ipaddress.ip_address("::ffff:192.0.2.10")]
    assert [s.name for s in dnsbl.sweep_subjects() if s.kind == Dnsbl.IP] == ["192.0.2.10"]
    make_ip("192.0.2.10", state=SendingIp.ACTIVE)
    assert [s.name for s in dnsbl.sweep_subjects() if s.kind == Dnsbl.IP] == ["192.0.2.10"]  # once, not twice


def test_changing_a_list_needs_no_separate_view_permission_as_in_the_admin():
    from django.contrib.auth.models import Permission

    make_list("alert.test", name="Alert list", action=Dnsbl.ALERT)
    person = UserFactory(email="ops@example.com", is_staff=True)
    person.user_permissions.add(Permission.objects.get(codename="change_dnsbl"))

    run("dnsbl_list", "update", "Alert list", "--disable", "--as", "ops@example.com")

    assert Dnsbl.objects.get(zone="alert.test").is_enabled is False
