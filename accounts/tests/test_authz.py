"""The one rule in accounts.authz, case by case (the matrix test drives it through the admin and commands)."""

import pytest
from django.contrib.auth.models import AnonymousUser, Permission
from django.core.exceptions import ValidationError

from accounts import authz
from accounts.tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people_staff():
    staff = UserFactory(email="helper@example.com", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="change_user"))
    return staff


def test_people_staff_manage_ordinary_people_but_not_superusers(people_staff):
    assert authz.may_manage_person(people_staff, UserFactory())
    assert not authz.may_manage_person(people_staff, StaffFactory())


def test_staff_without_the_people_permission_manage_nobody_but_themselves():
    clerk = UserFactory(is_staff=True)
    assert not authz.may_manage_person(clerk, UserFactory())
    assert authz.may_manage_person(clerk, clerk)


def test_an_inactive_or_anonymous_actor_manages_nobody(people_staff):
    person = UserFactory()
    people_staff.is_active = False
    assert not authz.may_manage_person(people_staff, person)
    assert not authz.may_manage_person(AnonymousUser(), person)


def test_the_system_manages_everyone_and_is_who_acts_without_a_request():
    assert authz.acting() is authz.SYSTEM
    assert authz.may_manage_person(authz.SYSTEM, StaffFactory())
    assert authz.audit_actor(authz.SYSTEM) is None


def test_require_names_the_field_and_the_rule(people_staff):
    root = StaffFactory(email="root@example.com")
    with pytest.raises(ValidationError) as e:
        authz.require_may_manage_person(people_staff, root, "password")
    assert e.value.message_dict == {
        "password": ["you may not act on the sign-in of root@example.com: only a superuser acts on a superuser."]
    }
