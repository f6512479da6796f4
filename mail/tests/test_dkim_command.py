"""manage.py dkim: generate, show, rotate and retire keys; the DNS records it prints and the OpenDKIM
files (and restart notice) a sync then writes."""

import datetime
import json
import re

import pytest
import time_machine
from django.contrib.auth.models import Permission

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from mail.dms.sync import dms_sync
from mail.models import DkimKey, DmsSyncState
from mail.tests.factories import (
    dms_file,
    make_domain,
    make_mailbox,
    refused,
    run,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def domain():
    return make_domain("example.com")


def ed25519(*args):
    """Ed25519 keys are generated in microseconds; RSA 2048 costs far more, so most tests use these."""
    return run("dkim", *args, "--algorithm", "ed25519")


def test_generate_makes_an_rsa_2048_key_with_selector_mail_and_prints_the_txt_record(domain):
    out = run("dkim", "generate", "Example.com")
    key = DkimKey.objects.get()
    assert (key.selector, key.algorithm, key.bits, key.state) == ("mail", "rsa", 2048, DkimKey.ACTIVE)
    assert "New DKIM key for example.com; publish:" in out
    (line,) = [line for line in out.splitlines() if line.startswith("mail._domainkey.example.com. IN TXT ")]
    assert line.endswith("   (active)")
    strings = re.findall(r'"([^"]*)"', line)
    assert len(strings) > 1 and all(len(s) <= 255 for s in strings)
    assert "".join(strings) == f"v=DKIM1; k=rsa; p={key.public_key_b64}"
    assert "PRIVATE KEY" not in out
    # Signing switches when the container is recreated: the command says to publish and check first.
    assert out.splitlines()[-1].startswith("Next: publish it, wait until `dig +short TXT mail._domainkey.example.com`")
    event = AuditEvent.objects.get(action="mail.dkim.generate")
    assert (event.actor_label, event.target_label) == ("manage.py dkim", "example.com")


def test_generate_takes_a_selector_and_an_algorithm_and_can_answer_in_json(domain):
    data = json.loads(ed25519("generate", "example.com", "--selector", "s1", "--json"))
    key = DkimKey.objects.get()
    assert data["selector"] == "s1"
    assert data["dns_name"] == "s1._domainkey.example.com"
    assert data["dns_value"] == f"v=DKIM1; k=ed25519; p={key.public_key_b64}"
    assert data["bits"] is None
    assert "PRIVATE KEY" not in json.dumps(data)


def test_show_prints_every_published_record_and_never_the_private_key(domain):
    ed25519("generate", "example.com")
    out = run("dkim", "show", "example.com")
    assert out.startswith("DNS records for example.com:")
    assert "mail._domainkey.example.com. IN TXT" in out
    assert "p=" in out
    assert "PRIVATE KEY" not in out
    rows = json.loads(run("dkim", "show", "example.com", "--json"))
    assert [r["selector"] for r in rows] == ["mail"]
    assert "PRIVATE KEY" not in json.dumps(rows)


@pytest.mark.parametrize("verb", ["generate", "rotate"])
def test_an_empty_selector_is_refused_not_replaced_by_the_default(domain, verb):
    if verb == "rotate":
        ed25519("generate", "example.com")
    message = refused("dkim", verb, "example.com", "--selector", "", "--algorithm", "ed25519")
    assert message.startswith("--selector: '' is not valid; use 1-63 lower-case letters, digits and hyphens")


@time_machine.travel(datetime.datetime(2026, 3, 14, 12, tzinfo=datetime.UTC), tick=False)
def test_rotate_signs_with_a_new_selector_and_keeps_the_old_one_published(domain):
    ed25519("generate", "example.com")
    out = ed25519("rotate", "example.com")
    assert "mail202603._domainkey.example.com." in out
    states = dict(DkimKey.objects.values_list("selector", "state"))
    assert states == {"mail": DkimKey.PUBLISHED, "mail202603": DkimKey.ACTIVE}
    rows = json.loads(run("dkim", "show", "example.com", "--json"))
    assert {(r["selector"], r["state"]) for r in rows} == {("mail", "published"), ("mail202603", "active")}
    assert "(published)" in run("dkim", "show", "example.com")
    # The output and the audit say which selector the new one replaces, and how it goes.
    assert "`manage.py dkim retire example.com SELECTOR` removes it." in out
    event = AuditEvent.objects.filter(action="mail.dkim.generate").latest("pk")
    assert event.description.endswith("selector mail202603. Rotated from mail (still published until retired).")


def test_retire_stops_publishing_a_rotated_out_key(domain):
    ed25519("generate", "example.com")
    ed25519("rotate", "example.com", "--selector", "next")
    # Tests' DNS answers REFUSED, so deliverability cannot see the new selector: --force (its own test is there).
    out = run("dkim", "retire", "example.com", "mail", "--force")
    assert "Retired mail._domainkey.example.com; remove its TXT record from DNS." in out
    assert DkimKey.objects.get(selector="mail").retired_at is not None
    assert [r["selector"] for r in json.loads(run("dkim", "show", "example.com", "--json"))] == ["next"]


def test_with_dkim_files_written_the_sync_state_asks_for_a_restart(domain, settings):
    make_mailbox("bob@example.com")
    dms_sync()
    assert DmsSyncState.load().restart_needed is False
    ed25519("generate", "example.com")
    dms_sync()
    state = DmsSyncState.load()
    assert state.restart_needed is True
    assert "Recreate the mailserver container" in state.restart_reason
    assert (
        (settings.DMS_DIR / "opendkim/keys/example.com/mail.private").read_text().startswith("-----BEGIN PRIVATE KEY")
    )
    key_table = dms_file(settings, "opendkim/KeyTable")
    assert "mail._domainkey.example.com example.com:mail:/etc/opendkim/keys/example.com/mail.private" in key_table
    assert "*@example.com mail._domainkey.example.com" in dms_file(settings, "opendkim/SigningTable")


def test_after_a_rotation_only_the_new_key_signs(domain, settings):
    ed25519("generate", "example.com")
    dms_sync()
    ed25519("rotate", "example.com", "--selector", "next")
    dms_sync()
    assert not (settings.DMS_DIR / "opendkim/keys/example.com/mail.private").exists()
    assert (settings.DMS_DIR / "opendkim/keys/example.com/next.private").exists()
    assert "*@example.com next._domainkey.example.com" in dms_file(settings, "opendkim/SigningTable")


@pytest.mark.parametrize(
    "args, message",
    [
        (["show", "example.com"], "domain: example.com has no DKIM key; run `manage.py dkim generate example.com`."),
        (["show", "unmanaged.org"], "NAME: no managed domain 'unmanaged.org'."),
        (["generate", "exam ple.com"], "NAME: spaces, line breaks and control characters are not allowed"),
        (["generate", "example.com", "--selector", "Bad_Sel"], "selector: 'Bad_Sel' is not valid"),
        (["retire", "example.com", "nope"], "selector: example.com has no DKIM key with selector 'nope'."),
    ],
)
def test_bad_input_is_refused_naming_the_field(domain, args, message):
    assert message in refused("dkim", *args)


def test_generate_is_refused_while_a_key_is_active(domain):
    ed25519("generate", "example.com")
    message = refused("dkim", "generate", "example.com", "--algorithm", "ed25519")
    assert message == "domain: example.com already has an active DKIM key; rotate it instead."


def test_rotate_to_a_selector_already_used_changes_nothing(domain):
    ed25519("generate", "example.com")
    message = refused("dkim", "rotate", "example.com", "--selector", "mail", "--algorithm", "ed25519")
    assert message == "--selector: example.com already used the selector 'mail'; pick another."
    assert DkimKey.objects.get().state == DkimKey.ACTIVE


def test_the_active_key_cannot_be_retired(domain):
    ed25519("generate", "example.com")
    assert refused("dkim", "retire", "example.com", "mail") == "state: the active key cannot be retired; rotate first."


def test_as_a_staff_member_each_change_needs_its_permission(domain):
    person = UserFactory(email="ops@example.com", is_staff=True)
    person.user_permissions.set(Permission.objects.filter(codename__in=["view_domain", "view_dkimkey"]))
    as_ops = ["--as", "ops@example.com"]
    assert refused("dkim", "generate", "example.com", *as_ops) == (
        "domain: you do not have the permission 'mail.change_domain'."
    )
    assert not DkimKey.objects.exists() and not AuditEvent.objects.filter(action__startswith="mail.dkim").exists()
    person.user_permissions.add(Permission.objects.get(content_type__app_label="mail", codename="change_domain"))
    ed25519("generate", "example.com", *as_ops)
    ed25519("rotate", "example.com", "--selector", "s2", *as_ops)
    assert AuditEvent.objects.filter(action="mail.dkim.generate", actor=person).count() == 2
    assert refused("dkim", "retire", "example.com", "mail", *as_ops) == (
        "selector: you do not have the permission 'mail.change_dkimkey'."
    )
    person.user_permissions.add(Permission.objects.get(content_type__app_label="mail", codename="change_dkimkey"))
    run("dkim", "retire", "example.com", "mail", "--force", *as_ops)
    assert DkimKey.objects.get(selector="mail").state == DkimKey.RETIRED
