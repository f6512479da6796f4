"""DKIM keys and records: keys that really sign, records receivers can read, selectors DNS accepts."""

import base64
from datetime import date

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from django.core.exceptions import ValidationError

from dockspace.validation import error_lines
from mail.dkim import (
    dns_record_value,
    generate_dkim_key,
    next_selector,
    public_key_b64_from_pem,
    rspamd_private_key,
    split_txt_for_dns,
    validate_selector,
)

# `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:512`: cryptography refuses to make one this small.
RSA_512_PEM = """-----BEGIN PRIVATE KEY-----
MIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6AgEAAkEAltqq8SuxmPpTCk0b
n8X8hRRvc4EDBQjti3upr0doVqgb+Fia9q29I7/n9XMa1l5D6NtjQycdYVTbScBc
Ki+7twIDAQABAkEAihj14j/Ini2StVxvTG13xPA3MvrIo+RPaaA0b1QkbSaiXtRS
Q+cdfpmxp1wzMgQLTdU9xDLtNwOcytY3TuqLKQIhAMTYrmIaJyugv62x5v39XJIP
iiCdbVdCsYhf98NBJvxDAiEAxC/SOZyJKCOJy5kw+9mRn9El5FyCV/DvROgsxPDt
xX0CIBvADD1qQHFnFP6QoObXi/BPXoKgjuSJU2vNU6lkCvHvAiA8RARsNi3b6q7V
oEVv2DHnyjO9pr1Tjmux2zCFfw1LcQIgPpSdOctzAUuGv0S+BZP08iTU0NBJ7/4E
K5iisFksIm4=
-----END PRIVATE KEY-----
"""
MESSAGE = b"from:Bob <bob@example.com>\r\nsubject:hello\r\n"


def published_key(algorithm, public_key_b64):
    """The public key a receiver rebuilds from the p= tag."""
    raw = base64.b64decode(public_key_b64, validate=True)
    if algorithm == "ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    return serialization.load_der_public_key(raw)


def sign_and_verify(private_key, public_key, signed=MESSAGE, received=MESSAGE):
    """Raises InvalidSignature unless the published key verifies what the private key signed."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        public_key.verify(private_key.sign(signed), received)
    else:
        signature = private_key.sign(signed, padding.PKCS1v15(), hashes.SHA256())  # rsa-sha256
        public_key.verify(signature, received, padding.PKCS1v15(), hashes.SHA256())


def verify_tampered(private_key, public_key):
    sign_and_verify(private_key, public_key, received=MESSAGE + b"x")


@pytest.mark.parametrize(
    "algorithm, bits, key_class",
    [
        ("rsa", 1024, rsa.RSAPrivateKey),
        ("rsa", 2048, rsa.RSAPrivateKey),
        ("rsa", 3072, rsa.RSAPrivateKey),
        ("rsa", 4096, rsa.RSAPrivateKey),
        ("ed25519", 0, ed25519.Ed25519PrivateKey),
    ],
)
def test_a_generated_key_signs_what_its_published_key_verifies(algorithm, bits, key_class):
    pem, public_key_b64 = generate_dkim_key(algorithm, bits or 2048)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n")
    private_key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(private_key, key_class)
    if algorithm == "rsa":
        assert private_key.key_size == bits
    public_key = published_key(algorithm, public_key_b64)
    sign_and_verify(private_key, public_key)
    with pytest.raises(InvalidSignature):
        verify_tampered(private_key, public_key)
    assert public_key_b64_from_pem(pem) == (algorithm, bits, public_key_b64)


def test_the_default_is_rsa_2048():
    pem, _ = generate_dkim_key()
    assert public_key_b64_from_pem(pem)[:2] == ("rsa", 2048)


def test_an_ed25519_record_carries_the_raw_32_byte_key():
    _, public_key_b64 = generate_dkim_key("ed25519")
    assert len(base64.b64decode(public_key_b64)) == 32
    assert len(public_key_b64) == 44


def test_an_rsa_record_carries_the_der_subject_public_key_info():
    _, public_key_b64 = generate_dkim_key("rsa", 2048)
    assert isinstance(serialization.load_der_public_key(base64.b64decode(public_key_b64)), rsa.RSAPublicKey)


def test_every_key_is_new():
    assert generate_dkim_key("ed25519") != generate_dkim_key("ed25519")


@pytest.mark.parametrize("bits", [512, 2047, 8192, 0, "2048", True, None])
def test_it_refuses_rsa_sizes_outside_the_list_naming_bits(bits):
    with pytest.raises(ValueError, match=r"^bits: an RSA DKIM key has 1024, 2048, 3072, 4096 bits"):
        generate_dkim_key("rsa", bits)


@pytest.mark.parametrize("algorithm", ["RSA", "ecdsa", "", None])
def test_it_refuses_an_unknown_algorithm_naming_it(algorithm):
    with pytest.raises(ValueError, match=r"^algorithm: "):
        generate_dkim_key(algorithm)


def test_it_reads_the_pkcs1_pem_opendkim_genkey_writes():
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    assert pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    algorithm, bits, public_key_b64 = public_key_b64_from_pem(pem)
    assert (algorithm, bits) == ("rsa", 2048)
    sign_and_verify(private_key, published_key("rsa", public_key_b64))


def _pem(private_key, encryption=None):
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        encryption or serialization.NoEncryption(),
    ).decode()


@pytest.mark.parametrize(
    "make_pem, message",
    [
        (lambda: "not a key", "private_key_pem: not an unencrypted PEM private key"),
        (lambda: "", "private_key_pem: not an unencrypted PEM private key"),
        (lambda: generate_dkim_key("ed25519")[0][:60], "private_key_pem: not an unencrypted PEM private key"),
        (
            lambda: _pem(
                ed25519.Ed25519PrivateKey.generate(), serialization.BestAvailableEncryption(b"secret passphrase")
            ),
            "private_key_pem: not an unencrypted PEM private key",
        ),
        (lambda: _pem(ec.generate_private_key(ec.SECP256R1())), "private_key_pem: DKIM signs with RSA or Ed25519"),
        (lambda: RSA_512_PEM, "private_key_pem: an RSA DKIM key needs at least 1024 bits, this one has 512."),
    ],
)
def test_it_refuses_a_pem_that_cannot_sign_dkim(make_pem, message):
    with pytest.raises(ValidationError) as excinfo:
        public_key_b64_from_pem(make_pem())
    assert error_lines(excinfo.value)[0].startswith(message)


def test_rspamd_gets_an_ed25519_key_as_base64_seed_and_public_key():
    pem, public_key_b64 = generate_dkim_key("ed25519")
    raw = base64.b64decode(rspamd_private_key(pem), validate=True)
    assert len(raw) == 64
    private_key = ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32])
    assert raw[32:] == base64.b64decode(public_key_b64)
    sign_and_verify(private_key, published_key("ed25519", public_key_b64))


def test_rspamd_gets_an_rsa_key_as_the_pem_itself():
    pem, _ = generate_dkim_key("rsa", 1024)
    assert rspamd_private_key(pem) == pem


def test_rspamd_key_refuses_what_is_not_a_pem():
    with pytest.raises(ValidationError) as excinfo:
        rspamd_private_key("not a key")
    assert error_lines(excinfo.value)[0].startswith("private_key_pem: ")


@pytest.mark.parametrize(
    "algorithm, public_key_b64, value",
    [
        ("rsa", "MIIBIjANBgkq", "v=DKIM1; k=rsa; p=MIIBIjANBgkq"),
        (
            "ed25519",
            "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
            "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        ),
    ],
)
def test_it_writes_the_dns_record_value(algorithm, public_key_b64, value):
    assert dns_record_value(algorithm, public_key_b64) == value


@pytest.mark.parametrize(
    "algorithm, public_key_b64, message",
    [
        ("dsa", "MIIBIjANBgkq", "algorithm: "),
        ("rsa", "", "public_key_b64: a public key is required."),
        ("rsa", "MIIB IjAN", "public_key_b64: not base64."),
        ("rsa", "MIIBIjANBgkq; t=y", "public_key_b64: not base64."),
    ],
)
def test_it_refuses_a_record_receivers_could_not_read(algorithm, public_key_b64, message):
    with pytest.raises(ValueError) as excinfo:
        dns_record_value(algorithm, public_key_b64)
    assert str(excinfo.value).startswith(message)


@pytest.mark.parametrize(
    "length, chunk, lengths",
    [
        (0, 255, [0]),
        (10, 255, [10]),
        (255, 255, [255]),
        (256, 255, [255, 1]),
        (600, 255, [255, 255, 90]),
        (10, 4, [4, 4, 2]),
    ],
)
def test_it_splits_a_txt_value_into_dns_strings(length, chunk, lengths):
    value = "".join(chr(ord("a") + i % 26) for i in range(length))
    parts = split_txt_for_dns(value, chunk)
    assert [len(part) for part in parts] == lengths
    assert "".join(parts) == value


def test_a_4096_bit_record_splits_into_strings_of_at_most_255():
    _, public_key_b64 = generate_dkim_key("rsa", 4096)
    value = dns_record_value("rsa", public_key_b64)
    parts = split_txt_for_dns(value)
    assert len(parts) == 3
    assert all(len(part) <= 255 for part in parts)
    assert "".join(parts) == value


@pytest.mark.parametrize("chunk", [0, 256, -1, "255", True])
def test_it_refuses_a_chunk_size_dns_cannot_hold(chunk):
    with pytest.raises(ValueError, match="^chunk: must be between 1 and 255"):
        split_txt_for_dns("v=DKIM1", chunk)


def test_it_refuses_a_non_ascii_txt_value():
    with pytest.raises(ValueError, match="^value: "):
        split_txt_for_dns("v=DKIM1; n=café")


@pytest.mark.parametrize("selector", ["mail", "s1", "mail202603", "mail202603-2", "a", "x" * 63, "0", "2024-q1"])
def test_it_accepts_a_selector_that_is_one_dns_label(selector):
    assert validate_selector(selector) == selector


@pytest.mark.parametrize(
    "selector",
    ["", "Mail", "-mail", "mail-", "ma_il", "mail.2024", "x" * 64, "mäil", "mail ", None, 2024],
)
def test_it_refuses_a_selector_that_is_not_one_lower_case_dns_label(selector):
    with pytest.raises(ValidationError) as excinfo:
        validate_selector(selector)
    assert error_lines(excinfo.value)[0].startswith("selector: ")
    assert "1-63 lower-case letters, digits and hyphens" in error_lines(excinfo.value)[0]


@pytest.mark.parametrize(
    "existing, today, selector",
    [
        (set(), date(2026, 3, 5), "mail"),
        ({"mail"}, date(2026, 3, 5), "mail202603"),
        ({"MAIL"}, date(2026, 3, 5), "mail202603"),
        ({"default"}, date(2026, 12, 31), "mail202612"),
        ({"mail", "mail202603"}, date(2026, 3, 20), "mail202603-2"),
        ({"mail", "mail202603", "mail202603-2"}, date(2026, 3, 20), "mail202603-3"),
        ({"mail202603"}, date(2026, 4, 1), "mail202604"),
    ],
)
def test_it_picks_a_readable_selector_not_yet_used(existing, today, selector):
    chosen = next_selector(existing, today)
    assert chosen == selector
    assert validate_selector(chosen) == chosen
