"""dockspace.secret_box: a value stored encrypted comes back with SECRET_KEY or a fallback key, never with another
use's box or an unknown key; an environment secret comes from the variable or NAME_FILE, and its absence is said."""

import pytest

from dockspace.secret_box import SecretBox


class Missing(Exception):
    pass


BOX = SecretBox(info=b"dockspace test secret", unavailable=Missing, undecryptable="cannot be decrypted: set it again")
OTHER = SecretBox(info=b"dockspace other secret", unavailable=Missing, undecryptable="other")


def test_a_value_comes_back_and_is_not_in_its_ciphertext():
    token = BOX.encrypt("s3cret-value")
    assert "s3cret-value" not in token
    assert BOX.decrypt(token) == "s3cret-value"


def test_another_use_cannot_read_it():
    with pytest.raises(Missing, match="other"):
        OTHER.decrypt(BOX.encrypt("s3cret-value"))


def test_a_rotated_key_reads_through_the_fallbacks_only(settings):
    token = BOX.encrypt("s3cret-value")
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "n" * 50, [settings.SECRET_KEY]
    assert BOX.decrypt(token) == "s3cret-value"
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(Missing, match="cannot be decrypted: set it again"):
        BOX.decrypt(token)


def test_an_environment_secret_or_its_file(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKSPACE_TEST_BOX", raising=False)
    monkeypatch.delenv("DOCKSPACE_TEST_BOX_FILE", raising=False)
    with pytest.raises(Missing, match="DOCKSPACE_TEST_BOX is not set in this process"):
        BOX.from_environment("DOCKSPACE_TEST_BOX")
    path = tmp_path / "box"
    path.write_text("from-a-file\n")
    monkeypatch.setenv("DOCKSPACE_TEST_BOX_FILE", str(path))
    assert BOX.from_environment("DOCKSPACE_TEST_BOX") == "from-a-file"
