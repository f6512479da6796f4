"""DKIM key records at <selector>._domainkey.<domain>: tags, and the published key against the one Dockspace holds."""

import base64

import pytest
from cryptography.hazmat.primitives import serialization

from deliverability.records.common import FAILED, OK, WARNING
from deliverability.records.dkim import DkimError, dkim_check, parse_dkim_key_record
from deliverability.tests.zones import Zone
from mail.dkim import dns_record_value, generate_dkim_key

DOMAIN = "example.com"
SELECTOR = "mail"
NAME = "mail._domainkey.example.com"

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


@pytest.fixture(scope="module")
def keys():
    """Public keys as mail's DkimKey holds them (public_key_b64)."""
    rsa_512 = serialization.load_pem_private_key(RSA_512_PEM.encode(), password=None).public_key()
    der_512 = rsa_512.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "rsa2048": generate_dkim_key("rsa", 2048)[1],
        "other2048": generate_dkim_key("rsa", 2048)[1],
        "rsa1024": generate_dkim_key("rsa", 1024)[1],
        "rsa512": base64.b64encode(der_512).decode(),
        "ed25519": generate_dkim_key("ed25519")[1],
    }


def check(records, algorithm, public_key_b64):
    zone = Zone({(NAME, "TXT"): records})
    return dkim_check(DOMAIN, SELECTOR, zone, algorithm=algorithm, public_key_b64=public_key_b64)


def reasons(result):
    return [problem.reason for problem in result.problems]


@pytest.mark.parametrize(
    "text, key_type, flags, hashes, services",
    [
        ("v=DKIM1; k=rsa; p=QUJD", "rsa", (), (), ("*",)),
        ("p=QUJD", "rsa", (), (), ("*",)),
        ("v=DKIM1;k=ed25519;p=QUJD;", "ed25519", (), (), ("*",)),
        (
            "v=DKIM1; h=sha1:sha256; s=email; t=y:s; n=hello there; p=QUJD",
            "rsa",
            ("y", "s"),
            ("sha1", "sha256"),
            ("email",),
        ),
        ("v=DKIM1; p=QU JD\r\n\tRUY=; x_unknown=1", "rsa", (), (), ("*",)),
    ],
)
def test_it_reads_the_tags(text, key_type, flags, hashes, services):
    record = parse_dkim_key_record(text)
    assert (record.key_type, record.flags, record.hash_algorithms, record.service_types) == (
        key_type,
        flags,
        hashes,
        services,
    )
    assert record.public_key_b64 in ("QUJD", "QUJDRUY=")


@pytest.mark.parametrize(
    "text, tag, rule",
    [
        ("k=rsa; v=DKIM1; p=QUJD", "v", "when present, v=DKIM1 is the first tag"),
        ("v=DKIM2; p=QUJD", "v", "when present, v=DKIM1 is the first tag"),
        ("v=DKIM1; k=dsa; p=QUJD", "k", "'dsa' is not rsa or ed25519"),
        ("v=DKIM1; k=rsa", "p", "the public key tag is required"),
        ("v=DKIM1; p=QUJD; p=QUJD", "p", "appears more than once"),
        ("v=DKIM1; p=not base64!", "p", "is not base64"),
        ("v=DKIM1; p=QUJ", "p", "is not base64"),
        ("v=DKIM1; k rsa; p=QUJD", "k rsa", "a tag is name=value"),
    ],
)
def test_it_refuses_a_broken_tag_naming_it_and_the_rule(text, tag, rule):
    with pytest.raises(DkimError) as caught:
        parse_dkim_key_record(text)
    assert (caught.value.tag, caught.value.rule.startswith(rule)) == (tag, True)


def test_the_key_dockspace_holds_is_ok(keys):
    result = check(dns_record_value("rsa", keys["rsa2048"]), "rsa", keys["rsa2048"])
    assert (result.matches, result.bits, result.finding.level) == (True, 2048, OK)
    assert result.finding.reason == "mail._domainkey.example.com: publishes Dockspace's rsa key, 2048 bits"
    assert result.finding.record_to_publish is None


def test_an_ed25519_key_is_ok(keys):
    result = check(dns_record_value("ed25519", keys["ed25519"]), "ed25519", keys["ed25519"])
    assert (result.matches, result.bits, result.finding.level) == (True, 0, OK)


def test_the_same_key_in_pkcs1_form_matches(keys):
    spki = serialization.load_der_public_key(base64.b64decode(keys["rsa2048"]))
    pkcs1 = spki.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    published = f"v=DKIM1; k=rsa; p={base64.b64encode(pkcs1).decode()}"
    assert check(published, "rsa", keys["rsa2048"]).matches


def test_whitespace_inside_p_is_tolerated(keys):
    key = keys["rsa2048"]
    chunks = [key[i : i + 60] for i in range(0, len(key), 60)]
    published = "v=DKIM1; k=rsa; p=" + " ".join(chunks[:2]) + "\t" + "\r\n ".join(chunks[2:])
    result = check(published, "rsa", key)
    assert result.finding.level == OK
    assert result.record.public_key_b64 == key


def test_another_key_fails_with_the_record_to_publish(keys):
    result = check(dns_record_value("rsa", keys["other2048"]), "rsa", keys["rsa2048"])
    assert not result.matches
    assert reasons(result) == ["mail._domainkey.example.com: the published key is not the one Dockspace signs with"]
    assert result.finding.level == FAILED
    assert result.finding.record_to_publish.name == NAME
    assert result.finding.record_to_publish.value == dns_record_value("rsa", keys["rsa2048"])


def test_a_key_of_the_other_type_fails_naming_both(keys):
    result = check(dns_record_value("rsa", keys["rsa2048"]), "ed25519", keys["ed25519"])
    assert reasons(result) == ["mail._domainkey.example.com: k=rsa but Dockspace signs with an ed25519 key"]


def test_a_revoked_key_fails(keys):
    result = check("v=DKIM1; k=rsa; p=", "rsa", keys["rsa2048"])
    assert reasons(result) == ["mail._domainkey.example.com: p= is empty: the key is revoked"]
    assert result.record.is_revoked
    assert result.finding.record_to_publish.value == dns_record_value("rsa", keys["rsa2048"])


def test_a_1024_bit_key_warns_and_asks_for_a_rotation_not_a_record(keys):
    result = check(dns_record_value("rsa", keys["rsa1024"]), "rsa", keys["rsa1024"])
    assert reasons(result) == ["mail._domainkey.example.com: a 1024-bit RSA key: 2048 is recommended; rotate the key"]
    assert (result.finding.level, result.bits) == (WARNING, 1024)
    assert result.finding.record_to_publish is None


def test_a_512_bit_key_fails(keys):
    result = check(dns_record_value("rsa", keys["rsa512"]), "rsa", keys["rsa512"])
    assert reasons(result) == ["mail._domainkey.example.com: a 512-bit RSA key: receivers ignore keys under 1024"]
    assert result.finding.level == FAILED


@pytest.mark.parametrize(
    "extra, level, reason",
    [
        ("t=y; ", WARNING, "t=y: testing mode, receivers may treat signatures as absent"),
        ("t=s; ", OK, None),
        ("h=sha1; ", FAILED, "h=sha1 excludes sha256, which Dockspace signs with"),
        ("h=sha1:sha256; ", OK, None),
        ("s=other; ", FAILED, "s=other: the key is not for email"),
        ("s=email; ", OK, None),
    ],
)
def test_flags_hashes_and_services(keys, extra, level, reason):
    result = check(f"v=DKIM1; k=rsa; {extra}p={keys['rsa2048']}", "rsa", keys["rsa2048"])
    assert result.finding.level == level
    assert reasons(result) == ([f"{NAME}: {reason}"] if reason else [])
    expected_record = dns_record_value("rsa", keys["rsa2048"]) if reason else None
    assert (result.finding.record_to_publish.value if result.finding.record_to_publish else None) == expected_record


def test_no_record_fails_with_the_record_to_publish(keys):
    result = dkim_check(DOMAIN, SELECTOR, Zone({}), algorithm="ed25519", public_key_b64=keys["ed25519"])
    assert reasons(result) == [f"{NAME}: no DKIM key record: receivers cannot verify Dockspace's signatures"]
    assert str(result.finding.record_to_publish) == f'{NAME}. TXT "v=DKIM1; k=ed25519; p={keys["ed25519"]}"'


def test_a_long_record_to_publish_is_cut_into_dns_strings(keys):
    result = dkim_check(DOMAIN, SELECTOR, Zone({}), algorithm="rsa", public_key_b64=keys["rsa2048"])
    strings = result.finding.record_to_publish.strings()
    assert len(strings) == 2 and all(len(string) <= 257 for string in strings)
    assert "".join(string.strip('"') for string in strings) == dns_record_value("rsa", keys["rsa2048"])


def test_two_key_records_fail(keys):
    records = [dns_record_value("rsa", keys["rsa2048"]), dns_record_value("rsa", keys["other2048"])]
    result = check(records, "rsa", keys["rsa2048"])
    assert reasons(result) == [f"{NAME}: 2 DKIM key records; verifiers pick any one, publish only one"]


def test_an_unrelated_txt_record_next_to_the_key_is_ignored(keys):
    result = check(["some-verification=abc", dns_record_value("rsa", keys["rsa2048"])], "rsa", keys["rsa2048"])
    assert result.finding.level == OK


def test_a_broken_record_fails_naming_the_tag(keys):
    result = check("v=DKIM1; k=rsa; p=AAAA", "rsa", keys["rsa2048"])
    assert reasons(result) == [f"{NAME}: p: k=rsa but p is not an RSA public key"]
    result = check("v=DKIM1; k=rsa; k=rsa; p=AAAA", "rsa", keys["rsa2048"])
    assert reasons(result) == [f"{NAME}: k: appears more than once (RFC 6376 3.2: the record is then invalid)"]


def test_a_failed_lookup_warns_without_a_record(keys):
    result = check("servfail", "rsa", keys["rsa2048"])
    assert (result.finding.level, result.finding.record_to_publish) == (WARNING, None)
    assert reasons(result) == [f"{NAME}: the TXT lookup failed (servfail); checked again later"]


def test_a_key_dockspace_cannot_read_is_refused_naming_it():
    with pytest.raises(ValueError, match="public_key_b64: Dockspace's key cannot be read"):
        dkim_check(DOMAIN, SELECTOR, Zone({}), algorithm="rsa", public_key_b64="QUJD")
    with pytest.raises(ValueError, match="algorithm: 'dsa' is not one of rsa, ed25519"):
        dkim_check(DOMAIN, SELECTOR, Zone({}), algorithm="dsa", public_key_b64="QUJD")
