import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.first_run import setup_code_issue, setup_code_path
from accounts.models import AuditEvent, User

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_setup_code_left_over():
    setup_code_path().unlink(missing_ok=True)
    yield
    setup_code_path().unlink(missing_ok=True)


def with_code(data):
    return {"setup_code": setup_code_issue(), **data}


GOOD = {
    "email": "Admin@Example.com",
    "full_name": "Ada Admin",
    "password1": "a long pass phrase 9",
    "password2": "a long pass phrase 9",
}


def test_every_page_leads_to_setup_while_no_account_exists(client):
    for url in ["/", "/login/", "/profile/", "/admin/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == "/setup/"


def test_health_endpoint_answers_before_setup(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_setup_creates_the_first_administrator_and_signs_in(client):
    response = client.post("/setup/", with_code(GOOD))
    assert response.status_code == 302
    assert response["Location"] == "/security/"
    admin = User.objects.get()
    assert admin.email == "admin@example.com"
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password("a long pass phrase 9")
    assert client.get("/profile/").status_code == 200
    assert AuditEvent.objects.filter(action="user.create", target_label="admin@example.com").exists()


def test_the_setup_page_says_the_password_signs_in_to_mail_only_once_there_is_a_mailbox(client):
    page = client.get("/setup/").content.decode()

    assert "Once you have a mailbox, your password also signs you in to mail." in page
    assert "Your password also signs you in to mail." not in page  # no mailbox exists yet


def test_setup_page_is_gone_once_an_account_exists(client):
    client.post("/setup/", with_code(GOOD))
    assert client.get("/setup/").status_code == 404
    assert client.post("/setup/", {**GOOD, "email": "other@example.com"}).status_code == 404
    assert User.objects.count() == 1


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"email": "not-an-address"}, "email", "Enter a valid email address"),
        ({"email": "a" * 250 + "@example.com"}, "email", "at most 254 characters"),
        ({"email": "bob@exa mple.com"}, "email", "Enter a valid email address"),
        ({"email": ""}, "email", "Enter your email address."),
        ({"password2": "something else 42"}, "password2", "The two passwords differ."),
        ({"password1": "short", "password2": "short"}, "password1", "too short"),
    ],
)
def test_setup_rejects_bad_input_and_creates_nothing(client, change, field, message):
    response = client.post("/setup/", {**with_code(GOOD), **change})
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert message.split(" (")[0] in response.content.decode()
    assert User.objects.count() == 0


def test_self_registration_is_off_by_default(client):
    from accounts.tests.factories import UserFactory

    UserFactory()
    assert client.get("/register/").status_code == 404
    assert "Create an account" not in client.get("/login/").content.decode()


# --- the one-time setup code (finding 17: whoever reaches the page first became superuser) ---------


def test_a_visitor_without_the_setup_code_cannot_become_the_first_administrator(client):
    setup_code_issue()
    for code in ["", "AAAA-AAAA-AAAA-AAAA", "x" * 64]:
        response = client.post("/setup/", {**GOOD, "setup_code": code})
        assert response.status_code == 200
        assert "setup_code" in response.context["form"].errors
    assert "This is not the setup code" in response.content.decode()
    assert User.objects.count() == 0
    # Positive control: the same form with the code creates the administrator.
    assert client.post("/setup/", with_code(GOOD))["Location"] == "/security/"
    assert User.objects.get().is_superuser


def test_the_setup_code_is_accepted_in_lower_case_and_without_dashes(client):
    code = setup_code_issue().replace("-", " ").lower()
    assert client.post("/setup/", {**GOOD, "setup_code": code}).status_code == 302
    assert User.objects.count() == 1


def test_the_setup_code_file_is_private_and_deleted_once_the_administrator_exists(client):
    client.get("/setup/")
    path = setup_code_path()
    assert path.stat().st_mode & 0o777 == 0o600
    client.post("/setup/", with_code(GOOD))
    assert not path.exists()


def test_the_setup_code_command_prints_the_code_the_page_accepts_and_can_regenerate_it(client):
    out = io.StringIO()
    call_command("setup_code", stdout=out)
    old = out.getvalue().split("setup code ")[1].split()[0]
    out = io.StringIO()
    call_command("setup_code", "--regenerate", stdout=out)
    new = out.getvalue().split("setup code ")[1].split()[0]
    assert old != new
    assert client.post("/setup/", {**GOOD, "setup_code": old}).status_code == 200
    assert client.post("/setup/", {**GOOD, "setup_code": new}).status_code == 302


def test_the_setup_code_command_says_there_is_none_once_set_up(client):
    client.post("/setup/", with_code(GOOD))
    out = io.StringIO()
    call_command("setup_code", stdout=out)
    assert "already set up" in out.getvalue()
    out = io.StringIO()
    call_command("setup_code", "--if-needed", stdout=out)
    assert out.getvalue() == ""
    with pytest.raises(CommandError, match="already set up"):
        call_command("setup_code", "--regenerate")
    assert not setup_code_path().exists()


def test_createsuperuser_also_deletes_the_setup_code():
    setup_code_issue()
    call_command("createsuperuser", "--noinput", email="root@example.com", stdout=io.StringIO(), stderr=io.StringIO())
    assert User.objects.filter(email="root@example.com", is_superuser=True).exists()
    assert not setup_code_path().exists()
