"""`manage.py check` refuses OIDC settings that would break sign-in (registered by OidcConfig.ready())."""

from django.core.checks import run_checks


def ids(problems):
    return {problem.id for problem in problems}


def test_an_issuer_with_a_path_is_refused_and_one_at_the_root_is_not(settings):
    settings.DOCKSPACE_URL = "https://example.com/dockspace"
    assert "dockspace.E003" in ids(run_checks())
    settings.DOCKSPACE_URL = "https://example.com"
    assert "dockspace.E003" not in ids(run_checks())


def test_the_client_secret_hasher_first_in_password_hashers_is_refused(settings):
    assert "dockspace.E004" not in ids(run_checks())
    settings.PASSWORD_HASHERS = ["oidc.hashers.ClientSecretSHA256Hasher", *settings.PASSWORD_HASHERS]
    assert "dockspace.E004" in ids(run_checks())
