"""A blocklist's access key: one stored before the encryption moved to dockspace.secret_box still decrypts, a
variable wins over a stored key, and what is shown instead of the key names no key."""

import pytest

from deliverability import dnsbl_keys

# Made with deliverability.dnsbl_keys before its encryption moved to dockspace.secret_box, under this SECRET_KEY.
OLD_KEY = "a-key-made-for-the-test-" + "k" * 30
OLD_TOKEN = (
    "gAAAAABrFcp-ztHx5IOQD7W0FEMkt7Xym60ZcJylYxDoyczl_nuX45eUbv2T"
    "lXZK5tTw8oQ8lsZHEbTsky2pNZr_mr-8bkHFMaCnv3Hpy_kbmmyZ72DKowg="
)


def test_a_key_stored_before_the_move_to_secret_box_still_decrypts(settings):
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    assert dnsbl_keys.access_key("", OLD_TOKEN) == "abcdef1234567890"
    settings.SECRET_KEY = "n" * 50
    with pytest.raises(dnsbl_keys.KeyUnavailable, match="cannot be decrypted .* set it again"):
        dnsbl_keys.access_key("", OLD_TOKEN)


def test_a_variable_wins_and_its_absence_is_said_without_the_key(monkeypatch, settings):
    settings.SECRET_KEY = OLD_KEY
    monkeypatch.delenv("DOCKSPACE_DNSBL_DQS", raising=False)
    monkeypatch.delenv("DOCKSPACE_DNSBL_DQS_FILE", raising=False)
    with pytest.raises(dnsbl_keys.KeyUnavailable, match="DOCKSPACE_DNSBL_DQS is not set in this process"):
        dnsbl_keys.access_key("DOCKSPACE_DNSBL_DQS", OLD_TOKEN)
    state = dnsbl_keys.key_state("DOCKSPACE_DNSBL_DQS", OLD_TOKEN)
    assert state == "not set: DOCKSPACE_DNSBL_DQS is not set in this process"
    monkeypatch.setenv("DOCKSPACE_DNSBL_DQS", " FromTheEnv99 ")
    assert dnsbl_keys.access_key("DOCKSPACE_DNSBL_DQS", OLD_TOKEN) == "fromtheenv99"
    assert dnsbl_keys.key_state("", OLD_TOKEN) == "set (stored encrypted)"
