import pytest

from accounts.models import AuditEvent, User

pytestmark = pytest.mark.django_db

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
    response = client.post("/setup/", GOOD)
    assert response.status_code == 302
    assert response["Location"] == "/security/"
    admin = User.objects.get()
    assert admin.email == "admin@example.com"
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password("a long pass phrase 9")
    assert client.get("/profile/").status_code == 200
    assert AuditEvent.objects.filter(action="user.create", target_label="admin@example.com").exists()


def test_setup_page_is_gone_once_an_account_exists(client):
    client.post("/setup/", GOOD)
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
    response = client.post("/setup/", {**GOOD, **change})
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert message.split(" (")[0] in response.content.decode()
    assert User.objects.count() == 0


def test_self_registration_is_off_by_default(client):
    from accounts.tests.factories import UserFactory

    UserFactory()
    assert client.get("/register/").status_code == 404
    assert "Create an account" not in client.get("/login/").content.decode()
