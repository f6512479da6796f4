"""Factories for people and their second factors."""

import factory
from django.contrib.auth.hashers import make_password
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User

PASSWORD = "correct horse battery staple"
_hash_cache = {}


def password_hash(password=PASSWORD):
    # Hashing with Argon2 for every factory user would dominate the run; one hash serves them all.
    if password not in _hash_cache:
        _hash_cache[password] = make_password(password)
    return _hash_cache[password]


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    full_name = factory.Faker("name")
    password = factory.LazyFunction(password_hash)


class StaffFactory(UserFactory):
    is_staff = True
    is_superuser = True


def totp_device(user, name="Phone"):
    return TOTPDevice.objects.create(user=user, name=name, confirmed=True)


def totp_code(device, offset_steps=0):
    """The code the person's app shows now (or `offset_steps` periods later)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = totp.time + offset_steps * device.step
    return f"{totp.token():0{device.digits}d}"
