"""Mail hosts in the admin: adding a host only after its offered host key is confirmed, the pinned key shown
read-only and re-pinned the same way when it changed, and recreate/restart/reload/bootstrap as a dry run showing the
command, then run on a confirmed POST."""

import pytest
from django.test import Client

from accounts.models import AuditEvent
from dockspace.tests.admin_pages import errors
from monitoring import bootstrap
from monitoring.hosts import mailhosts_need_restart
from monitoring.models import HostProbe, MailHost
from monitoring.tests.factories import add_host
from monitoring.tests.sshd import COMPOSE_DIR, COMPOSE_LABELS, compose_up_argv, labels_argv
from monitoring.tests.test_mailhost_check import no_tls  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db

ADD = "/admin/monitoring/mailhost/add/"


@pytest.fixture
def browser():
    from accounts.tests.factories import StaffFactory

    client = Client()
    client.force_login(StaffFactory(email="root@example.com"))
    return client


def staff_client(email, codenames):
    from django.contrib.auth.models import Permission

    from accounts.tests.factories import UserFactory

    staff = UserFactory(email=email, is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="monitoring", codename__in=codenames))
    client = Client()
    client.force_login(staff)
    return client


def add_form(sshd, **changes):
    return {
        "name": "mx1",
        "ssh": sshd.target,
        "key_path": str(sshd.keys["user"]),
        "key_env": "",
        "container": "mailserver",
        "compose_dir": "",
        "mail_volume": "/",
        "notes": "",
        **changes,
    }


def confirmation(page):
    text = page.content.decode()
    return text.split('name="confirmation" value="', 1)[1].split('"', 1)[0]


def test_adding_shows_the_offered_fingerprint_and_stores_the_host_only_once_trusted(browser, sshd):
    assert browser.get(ADD).status_code == 200
    offered = browser.post(ADD, add_form(sshd))
    assert offered.status_code == 200
    assert sshd.fingerprint() in offered.content.decode()
    assert "Yes, I checked it: trust this key" in offered.content.decode()
    assert not MailHost.objects.exists()
    added = browser.post(ADD, {"confirmation": confirmation(offered), "trust": "yes"})
    host = MailHost.objects.get()
    assert added.status_code == 302 and added["Location"] == f"/admin/monitoring/mailhost/{host.pk}/change/"
    assert host.host_key_fingerprint == sshd.fingerprint() and host.is_default
    page = browser.get(added["Location"]).content.decode()
    assert sshd.fingerprint() in page
    assert 'name="host_key_fingerprint"' not in page  # shown, never editable
    event = AuditEvent.objects.get(action="monitoring.mailhost.add")
    assert event.actor_label == "root@example.com"


def test_answering_no_or_replaying_the_confirmation_stores_nothing(browser, sshd):
    offered = browser.post(ADD, add_form(sshd))
    token = confirmation(offered)
    back = browser.post(ADD, {"confirmation": token, "trust": "no"})
    assert back.status_code == 200 and 'value="mx1"' in back.content.decode()  # the form again, filled in
    again = browser.post(ADD, {"confirmation": token, "trust": "yes"})
    assert again.status_code == 302 and again["Location"] == ADD
    assert not MailHost.objects.exists()


def test_a_key_that_changed_between_the_two_steps_is_refused_naming_both(browser, sshd):
    offered = browser.post(ADD, add_form(sshd))
    sshd.restart(host_key="second")
    refused = browser.post(ADD, {"confirmation": confirmation(offered), "trust": "yes"})
    text = refused.content.decode()
    assert refused.status_code == 200
    assert sshd.fingerprint("first") in text and sshd.fingerprint("second") in text
    assert not MailHost.objects.exists()


def test_bad_input_is_shown_on_its_field(browser, sshd):
    page = browser.post(ADD, add_form(sshd, ssh="no-at-sign", key_path=""))
    assert page.status_code == 200
    assert "give the SSH target as USER@HOST" in page.content.decode()
    page = browser.post(ADD, add_form(sshd, key_path="relative/key"))
    assert "the key file must be an absolute path" in page.content.decode()
    assert not MailHost.objects.exists()


def field_errors(page):
    assert page.status_code == 200, page.status_code
    return {name: list(found) for name, found in page.context["form"].errors.items()}


@pytest.mark.parametrize("host", ["a..b", "...", "x" * 64 + ".example.com"])
def test_a_host_that_is_no_dns_name_is_an_error_on_the_ssh_field_not_a_500(browser, sshd, host):
    found = field_errors(browser.post(ADD, add_form(sshd, ssh=f"u@{host}")))
    assert list(found) == ["ssh"] and found["ssh"][0].startswith(f"'{host}' is not a host name or IP address: give")
    assert not MailHost.objects.exists()
    # Positive control: a well-formed target is contacted (and its key offered).
    assert sshd.fingerprint() in browser.post(ADD, add_form(sshd)).content.decode()


def test_a_key_outside_the_key_directory_or_a_variable_without_the_prefix_is_refused(browser, sshd, settings, tmp_path):
    settings.MAILHOST_SSH_KEY_DIR = tmp_path / "keys"
    settings.MAILHOST_SSH_KEY_DIR.mkdir()
    leading_out = settings.MAILHOST_SSH_KEY_DIR / "mx1"
    leading_out.symlink_to(sshd.keys["user"])
    rule = f"inside the SSH key directory {tmp_path / 'keys'} (DOCKSPACE_SSH_KEY_DIR; symbolic links are followed)"
    for path in (sshd.keys["user"], leading_out, f"{tmp_path}/keys/../keys-other/mx1"):
        page = browser.post(ADD, add_form(sshd, key_path=str(path)))
        found = field_errors(page)
        assert list(found) == ["key_path"] and rule in found["key_path"][0], found
    page = browser.post(ADD, add_form(sshd, key_path="", key_env="SECRET_KEY"))
    assert field_errors(page) == {
        "key_env": [
            "'SECRET_KEY' is refused: the key variable's name must start with DOCKSPACE_SSH_KEY_ (then letters, "
            "digits, '_'; e.g. DOCKSPACE_SSH_KEY_MX1), so that no other variable of Dockspace's is read as a key."
        ]
    }
    assert not MailHost.objects.exists()
    assert f"inside {tmp_path / 'keys'} (DOCKSPACE_SSH_KEY_DIR)" in browser.get(ADD).content.decode()
    # Positive control: the key in the directory goes on to the host key's confirmation.
    inside = settings.MAILHOST_SSH_KEY_DIR / "mx1_ed25519"
    inside.write_text(sshd.keys["user"].read_text())
    inside.chmod(0o600)
    offered = browser.post(ADD, add_form(sshd, key_path=str(inside)))
    assert "Yes, I checked it: trust this key" in offered.content.decode()


def test_the_change_form_refuses_a_key_from_elsewhere(browser, sshd, monkeypatch):
    host = add_host(sshd)
    url = f"/admin/monitoring/mailhost/{host.pk}/change/"
    form = {"key_path": "", "key_env": "", "container": "mailserver", "mail_volume": "/", "notes": ""}
    refused = browser.post(url, {**form, "key_path": "/etc/ssl/private/ssl-cert-snakeoil.key"})
    assert "key_path" in errors(refused) and "DOCKSPACE_SSH_KEY_DIR" in errors(refused)["key_path"][0]
    refused = browser.post(url, {**form, "key_env": "SECRET_KEY"})
    assert list(errors(refused)) == ["key_env"]
    assert "must start with DOCKSPACE_SSH_KEY_" in errors(refused)["key_env"][0]
    host.refresh_from_db()
    assert (host.key_path, host.key_env) == (str(sshd.keys["user"]), "")
    # Positive control: a variable with the prefix holding the key is taken.
    monkeypatch.setenv("DOCKSPACE_SSH_KEY_MX1", sshd.keys["user"].read_text())
    assert browser.post(url, {**form, "key_env": "DOCKSPACE_SSH_KEY_MX1"}).status_code == 302
    host.refresh_from_db()
    assert (host.key_path, host.key_env) == ("", "DOCKSPACE_SSH_KEY_MX1")


def test_the_change_form_changes_through_the_service(browser, sshd):
    host = add_host(sshd)
    url = f"/admin/monitoring/mailhost/{host.pk}/change/"
    form = {
        "key_path": str(sshd.keys["user"]),
        "key_env": "",
        "container": "dms",
        "compose_dir": "/srv/dms",
        "mail_volume": "/srv/mail",
        "notes": "rack 4",
    }
    assert browser.post(url, form).status_code == 302
    host.refresh_from_db()
    assert (host.container, host.compose_dir, host.notes) == ("dms", "/srv/dms", "rack 4")
    assert AuditEvent.objects.filter(action="monitoring.mailhost.change").exists()
    refused = browser.post(url, {**form, "key_env": "MX1_KEY"})
    assert "give exactly one of a key file" in refused.content.decode()


def test_restart_shows_the_command_first_and_runs_it_on_confirmation(browser, sshd):
    host = add_host(sshd)
    url = f"/admin/monitoring/mailhost/{host.pk}/restart/"
    assert "/restart/" in browser.get(f"/admin/monitoring/mailhost/{host.pk}/change/").content.decode()
    dry = browser.get(url).content.decode()
    assert "Dry run: nothing was run yet" in dry and "docker restart mailserver" in dry
    assert sshd.calls() == []
    done = browser.post(url).content.decode()
    assert "It succeeded (exit 0)." in done
    assert sshd.calls() == [["docker", "restart", "mailserver"]]
    assert AuditEvent.objects.get(action="monitoring.mailhost.restart").actor_label == "root@example.com"


def test_a_restart_from_the_admin_says_it_applies_no_set_up_and_keeps_the_flag(browser, sshd):
    host = add_host(sshd, compose_dir=COMPOSE_DIR)
    mailhosts_need_restart(reason="OpenDKIM keys or tables changed")
    url = f"/admin/monitoring/mailhost/{host.pk}/restart/"
    assert "DMS skips its set-up" in browser.get(url).content.decode()
    assert "It succeeded (exit 0)." in browser.post(url).content.decode()
    host.refresh_from_db()
    assert host.restart_needed is True


def test_recreate_looks_up_the_service_then_runs_it_on_confirmation_and_clears_the_flag(browser, sshd):
    host = add_host(sshd, compose_dir=COMPOSE_DIR)
    mailhosts_need_restart(reason="OpenDKIM keys or tables changed")
    url = f"/admin/monitoring/mailhost/{host.pk}/recreate/"
    assert "/recreate/" in browser.get(f"/admin/monitoring/mailhost/{host.pk}/change/").content.decode()
    first = browser.get(url).content.decode()
    assert "{{json .Config.Labels}}" in first and "Show the command" in first
    assert sshd.calls() == []  # a GET contacts nothing
    up = " ".join(compose_up_argv())
    shown = browser.post(url, {"look_up": "Show the command"}).content.decode()
    assert "Dry run: nothing was changed yet" in shown and up in shown and "Recreate the container" in shown
    assert sshd.calls() == [labels_argv()]
    host.refresh_from_db()
    assert host.restart_needed is True
    done = browser.post(url).content.decode()
    assert "the container was recreated and “restart needed” is cleared" in done
    assert sshd.calls()[1:] == [labels_argv(), compose_up_argv()]
    host.refresh_from_db()
    assert host.restart_needed is False
    assert AuditEvent.objects.get(action="monitoring.mailhost.recreate").actor_label == "root@example.com"


def test_recreate_without_a_compose_directory_or_labels_is_refused_on_the_host_page(browser, sshd):
    host = add_host(sshd)
    mailhosts_need_restart(reason="OpenDKIM keys or tables changed")
    url = f"/admin/monitoring/mailhost/{host.pk}/recreate/"
    page = browser.post(url, follow=True).content.decode()
    assert "mx1 has no compose directory" in page and "recreate the container the way it was created" in page
    assert sshd.calls() == []
    MailHost.objects.filter(pk=host.pk).update(compose_dir=COMPOSE_DIR)
    sshd.set_labels({**COMPOSE_LABELS, "com.docker.compose.service": "mailserver`id`"})
    page = browser.post(url, follow=True).content.decode()
    assert "not a service name Dockspace runs commands with" in page
    assert sshd.calls() == [labels_argv()]
    host.refresh_from_db()
    assert host.restart_needed is True


def test_reload_dovecot_from_the_admin(browser, sshd):
    host = add_host(sshd)
    url = f"/admin/monitoring/mailhost/{host.pk}/reload/dovecot/"
    assert "docker exec mailserver doveadm reload" in browser.get(url).content.decode()
    browser.post(url)
    assert sshd.calls() == [["docker", "exec", "mailserver", "doveadm", "reload"]]
    other = browser.get(f"/admin/monitoring/mailhost/{host.pk}/reload/rspamd/")
    assert other.status_code == 302  # refused, back to the host with the reason
    assert sshd.calls() == [["docker", "exec", "mailserver", "doveadm", "reload"]]


def test_bootstrap_lists_findings_and_applies_the_safe_fixes_on_confirmation(browser, sshd, settings):
    host = add_host(sshd)
    url = f"/admin/monitoring/mailhost/{host.pk}/bootstrap/"
    page = browser.get(url).content.decode()
    assert "Run the checks" in page and sshd.calls() == []  # a GET connects to nothing
    page = browser.post(url, {"check": "Run the checks"}).content.decode()
    assert "Dockspace&#x27;s marker file is not in" in page and "Apply the safe fixes" in page
    assert not (settings.DMS_DIR / bootstrap.MARKER_NAME).exists()
    page = browser.post(url).content.decode()
    assert "Everything Dockspace needs is in place." in page
    assert (settings.DMS_DIR / bootstrap.MARKER_NAME).exists()


def test_a_changed_host_key_in_the_admin_runs_nothing_and_says_why(browser, sshd):
    host = add_host(sshd)
    sshd.restart(host_key="second")
    response = browser.post(f"/admin/monitoring/mailhost/{host.pk}/restart/", follow=True)
    text = response.content.decode()
    assert sshd.fingerprint("first") in text and sshd.fingerprint("second") in text
    assert sshd.calls() == []


def test_staff_without_operate_cannot_restart_and_with_it_can(sshd):
    host = add_host(sshd)
    viewer = staff_client("viewer@example.com", ["view_mailhost"])
    change = viewer.get(f"/admin/monitoring/mailhost/{host.pk}/change/").content.decode()
    assert "/restart/" not in change  # not offered...
    refused = viewer.post(f"/admin/monitoring/mailhost/{host.pk}/restart/", follow=True)  # ...and refused
    assert "you do not have the permission &#x27;monitoring.operate_mailhost&#x27;." in refused.content.decode()
    assert viewer.get(ADD).status_code == 403
    assert sshd.calls() == []
    operator = staff_client("ops@example.com", ["view_mailhost", "operate_mailhost"])
    assert "/restart/" in operator.get(f"/admin/monitoring/mailhost/{host.pk}/change/").content.decode()
    operator.post(f"/admin/monitoring/mailhost/{host.pk}/restart/")
    assert sshd.calls() == [["docker", "restart", "mailserver"]]
    refused = viewer.get(f"/admin/monitoring/mailhost/{host.pk}/recreate/", follow=True)
    assert "you do not have the permission &#x27;monitoring.operate_mailhost&#x27;." in refused.content.decode()


def test_deleting_the_default_host_in_the_admin_promotes_another(browser, sshd):
    first = add_host(sshd, "mx1")
    add_host(sshd, "mx2")
    response = browser.post(f"/admin/monitoring/mailhost/{first.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert list(MailHost.objects.values_list("name", "is_default")) == [("mx2", True)]
    assert AuditEvent.objects.filter(action="monitoring.mailhost.remove", target_label="mx1").exists()


# --- re-pinning a host key ---------------------------------------------------------------------------------------


def repin_url(host):
    return f"/admin/monitoring/mailhost/{host.pk}/repin/"


@pytest.mark.usefixtures("no_tls")
def test_repin_shows_both_keys_pins_the_one_confirmed_and_the_host_is_checked_again(browser, sshd):
    host = add_host(sshd)
    sshd.restart(host_key="second")
    check_url = f"/admin/monitoring/mailhost/{host.pk}/check/"
    refused = browser.post(check_url).content.decode()
    assert "was <strong>down</strong>" in refused and f"it offers {sshd.fingerprint('second')}" in refused
    assert "Re-pin host key" in refused  # the refusal says where to go

    assert repin_url(host) in browser.get(f"/admin/monitoring/mailhost/{host.pk}/change/").content.decode()
    explained = browser.get(repin_url(host)).content.decode()
    assert sshd.fingerprint("first") in explained and "Fetch the host's current key" in explained
    assert sshd.fingerprint("second") not in explained  # a GET connects to nothing

    offered = browser.post(repin_url(host), {"fetch": "1"})
    text = offered.content.decode()
    assert sshd.fingerprint("second") in text and sshd.fingerprint("first") in text
    assert "Yes, I checked it: pin this key instead" in text
    host.refresh_from_db()
    assert host.host_key_fingerprint == sshd.fingerprint("first")  # fetching stores nothing

    pinned = browser.post(repin_url(host), {"confirmation": confirmation(offered), "trust": "yes"})
    assert pinned.status_code == 302 and pinned["Location"] == f"/admin/monitoring/mailhost/{host.pk}/change/"
    host.refresh_from_db()
    assert host.host_key_fingerprint == sshd.fingerprint("second")
    event = AuditEvent.objects.get(action="monitoring.mailhost.repin")
    assert event.actor_label == "root@example.com"
    assert sshd.fingerprint("second") in event.description and sshd.fingerprint("first") in event.description

    assert "was <strong>healthy</strong>" in browser.post(check_url).content.decode()
    assert HostProbe.objects.latest("started_at").status == "healthy"


def test_a_key_that_changes_again_between_fetch_and_confirm_is_refused_naming_both(browser, sshd):
    host = add_host(sshd)
    sshd.restart(host_key="second")
    offered = browser.post(repin_url(host), {"fetch": "1"})
    sshd.restart(host_key="ecdsa")
    refused = browser.post(repin_url(host), {"confirmation": confirmation(offered), "trust": "yes"})
    text = refused.content.decode()
    assert refused.status_code == 200
    assert f"offers the host key {sshd.fingerprint('ecdsa')}" in text and f"not {sshd.fingerprint('second')}" in text
    host.refresh_from_db()
    assert host.host_key_fingerprint == sshd.fingerprint("first")
    assert not AuditEvent.objects.filter(action="monitoring.mailhost.repin").exists()


def test_a_confirmation_is_answered_once_and_no_pins_nothing(browser, sshd):
    host = add_host(sshd)
    sshd.restart(host_key="second")
    offered = browser.post(repin_url(host), {"fetch": "1"})
    back = browser.post(repin_url(host), {"confirmation": confirmation(offered), "trust": "no"})
    assert back.status_code == 200 and "Fetch the host's current key" in back.content.decode()
    replayed = browser.post(repin_url(host), {"confirmation": confirmation(offered), "trust": "yes"})
    assert "That confirmation expired or was already answered" in replayed.content.decode()
    host.refresh_from_db()
    assert host.host_key_fingerprint == sshd.fingerprint("first")


def test_a_repin_post_without_the_csrf_token_is_refused(sshd):
    from accounts.tests.factories import StaffFactory

    host = add_host(sshd)
    sshd.restart(host_key="second")
    client = Client(enforce_csrf_checks=True)
    client.force_login(StaffFactory(email="root@example.com"))
    assert client.post(repin_url(host), {"fetch": "1"}).status_code == 403
    page = client.get(repin_url(host))  # positive control: the page's own form carries the token
    token = page.content.decode().split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    offered = client.post(repin_url(host), {"fetch": "1", "csrfmiddlewaretoken": token})
    assert sshd.fingerprint("second") in offered.content.decode()


def test_a_host_still_offering_its_pinned_key_has_nothing_to_repin(browser, sshd):
    host = add_host(sshd)
    page = browser.post(repin_url(host), {"fetch": "1"}).content.decode()
    assert f"offers the pinned key {host.host_key_fingerprint}; nothing to re-pin." in page
    assert 'name="confirmation"' not in page


def test_repin_needs_the_permission_to_change_mail_hosts(sshd):
    host = add_host(sshd)
    sshd.restart(host_key="second")
    operator = staff_client("ops@example.com", ["view_mailhost", "operate_mailhost"])
    assert repin_url(host) not in operator.get(f"/admin/monitoring/mailhost/{host.pk}/change/").content.decode()
    refused = operator.post(repin_url(host), {"fetch": "1"}).content.decode()
    assert "you do not have the permission &#x27;monitoring.change_mailhost&#x27;." in refused
    assert sshd.fingerprint("second") not in refused

    editor = staff_client("editor@example.com", ["view_mailhost", "change_mailhost"])
    assert repin_url(host) in editor.get(f"/admin/monitoring/mailhost/{host.pk}/change/").content.decode()
    offered = editor.post(repin_url(host), {"fetch": "1"})
    assert sshd.fingerprint("second") in offered.content.decode()
    # The permission is taken away before the answer: the service refuses the confirmation too.
    from django.contrib.auth.models import Permission

    from accounts.models import User

    User.objects.get(email="editor@example.com").user_permissions.remove(
        Permission.objects.get(codename="change_mailhost")
    )
    refused = editor.post(repin_url(host), {"confirmation": confirmation(offered), "trust": "yes"}).content.decode()
    assert "you do not have the permission &#x27;monitoring.change_mailhost&#x27;." in refused
    host.refresh_from_db()
    assert host.host_key_fingerprint == sshd.fingerprint("first")
    assert not AuditEvent.objects.filter(action="monitoring.mailhost.repin").exists()
