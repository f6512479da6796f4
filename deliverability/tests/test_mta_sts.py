"""MTA-STS: the policy file's parser and the check's verdicts table-tested as pure code, then the DNS checks
fetching the policy over HTTPS from a real server on loopback (a certificate for mta-sts.example.com the test
makes), the host resolved through the loopback NSD the DNS checks ask."""

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import pytest

from accounts.authz import SystemActor
from deliverability.dns.answer import NXDOMAIN, OK, TIMEOUT, Answer
from deliverability.dns.resolver import DnsRun
from deliverability.dns_checks import domain_dns_check, mta_sts_fetcher
from deliverability.records.mta_sts import MtaStsPolicy, PolicyFetchError, mta_sts_check, parse_mta_sts_policy
from deliverability.tests.mail_dns import MAIL_HOSTNAME, right_records
from dockspace.tests.certificates import Authority
from dockspace.tests.http_servers import serving

ENFORCE = f"version: STSv1\nmode: enforce\nmx: {MAIL_HOSTNAME}\nmax_age: 86400\n"
URL = "https://mta-sts.example.com/.well-known/mta-sts.txt"


# --- the policy file ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "policy", "problems"),
    [
        (ENFORCE, MtaStsPolicy("STSv1", "enforce", 86400, (MAIL_HOSTNAME,)), []),
        (
            "version: STSv1\r\nmode: testing\r\nmx: MX1.Example.NET.\r\nmx: *.example.org\r\nmax_age: 604800\r\n",
            MtaStsPolicy("STSv1", "testing", 604800, ("mx1.example.net", "*.example.org")),
            [],
        ),
        ("version: STSv1\nmode: none\nmax_age: 0\n", MtaStsPolicy("STSv1", "none", 0, ()), []),
        (
            "mode: enforce\nmx: mx.example.net\nmax_age: 86400\n",
            MtaStsPolicy("", "enforce", 86400, ("mx.example.net",)),
            ["no version: STSv1 line"],
        ),
        (
            "version: STSv2\nmode: strict\nmx: mx.example.net\nmax_age: 86400\n",
            MtaStsPolicy("STSv2", "strict", 86400, ("mx.example.net",)),
            ["version is 'STSv2', not STSv1", "mode 'strict' is not one of enforce, testing, none"],
        ),
        (
            "version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: 31557601\n",
            MtaStsPolicy("STSv1", "enforce", 31557601, ("mx.example.net",)),
            ["max_age must be a number of seconds up to 31557600"],
        ),
        (
            "version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: -1\n",
            MtaStsPolicy("STSv1", "enforce", None, ("mx.example.net",)),
            ["max_age must be a number of seconds up to 31557600"],
        ),
        (
            "version: STSv1\nmode: enforce\nmax_age: 86400\n",
            MtaStsPolicy("STSv1", "enforce", 86400, ()),
            ["no mx line: no MX host is allowed"],
        ),
        (
            "version: STSv1\nmode: testing\nmx: *.*.example.net\nmax_age: 86400\n",
            MtaStsPolicy("STSv1", "testing", 86400, ("*.*.example.net",)),
            ["mx '*.*.example.net' is not a host name or *.name"],
        ),
        (
            "<html><body>Welcome to nginx!</body></html>",
            MtaStsPolicy("", "", None, ()),
            ["no version: STSv1 line", "no mode line", "max_age must be a number of seconds up to 31557600"],
        ),
    ],
)
def test_the_policy_file_is_parsed_and_its_problems_named(text, policy, problems):
    assert parse_mta_sts_policy(text) == (policy, problems)


# --- the check's verdicts (pure: a lookup and a fetcher given) ------------------------------------------------


def lookup_with(txt_records, status=OK):
    def lookup(name, rdtype):
        assert (name, rdtype) == ("_mta-sts.example.com", "TXT")
        return Answer(name, rdtype, status, tuple(txt_records))

    return lookup


def serving_policy(text):
    def fetch(url):
        assert url == URL
        if isinstance(text, Exception):
            raise text
        return text

    return fetch


def policy(mode, *mx):
    return "version: STSv1\n" + f"mode: {mode}\n" + "".join(f"mx: {host}\n" for host in mx) + "max_age: 86400\n"


@pytest.mark.parametrize(
    ("txt", "served", "level", "reason"),
    [
        ([], None, "ok", "example.com: no MTA-STS policy published (optional)"),
        (["v=STSv1; id=20250301"], ENFORCE, "ok", "example.com: MTA-STS mode enforce, id=20250301, max_age=86400"),
        (
            ["v=STSv1; id=20250301"],
            policy("enforce", "*.example.net"),
            "ok",
            "example.com: MTA-STS mode enforce, id=20250301, max_age=86400",
        ),
        (
            ["v=STSv1; id=1"],
            policy("testing", MAIL_HOSTNAME),
            "ok",
            "example.com: MTA-STS mode testing (failures are reported, not enforced), id=1, max_age=86400",
        ),
        (
            ["v=STSv1; id=1"],
            policy("enforce", "mx.other.example"),
            "failed",
            f"{URL}: MX {MAIL_HOSTNAME} is not among its mx lines (mx.other.example): senders that cached it "
            "refuse to deliver there",
        ),
        (
            ["v=STSv1; id=1"],
            policy("enforce", "*.mail.example.net"),  # the wildcard is one label deeper than the MX
            "failed",
            f"{URL}: MX {MAIL_HOSTNAME} is not among its mx lines (*.mail.example.net): senders that cached it "
            "refuse to deliver there",
        ),
        (
            ["v=STSv1; id=1"],
            policy("testing", "mx.other.example"),
            "warning",
            f"{URL}: MX {MAIL_HOSTNAME} is not among its mx lines (mx.other.example): senders report it",
        ),
        (
            ["v=STSv1; id=1"],
            policy("none"),
            "warning",
            f"{URL}: mode none: senders enforce nothing (a policy being withdrawn)",
        ),
        (
            ["v=STSv1; id=1"],
            "version: STSv1\nmode: enforce\nmx: mx.other.example\n",  # invalid: the MX mismatch does not count
            "warning",
            f"{URL}: max_age must be a number of seconds up to 31557600: senders ignore an invalid policy",
        ),
        (
            ["v=STSv1; id=1"],
            PolicyFetchError("https://mta-sts.example.com answered HTTP 404, not HTTP 200"),
            "warning",
            f"example.com: MTA-STS record id=1, but its policy {URL} cannot be read: https://mta-sts.example.com "
            "answered HTTP 404, not HTTP 200; senders apply no policy they cannot fetch",
        ),
        (["v=STSv1; id=bad-id!"], None, "warning", "_mta-sts.example.com: id= must be 1 to 32 letters or digits"),
        (["v=STSv1; id=1", "v=STSv1; id=2"], None, "warning", "_mta-sts.example.com: 2 v=STSv1 records"),
    ],
)
def test_the_check_judges_the_record_and_the_policy(txt, served, level, reason):
    asked = []

    def fetch(url):
        asked.append(url)
        return serving_policy(served)(url)

    finding = mta_sts_check("example.com", lookup_with(txt), mx_hosts=[MAIL_HOSTNAME], fetch_policy=fetch)
    assert finding.level == level
    assert finding.reason.startswith(reason)
    assert asked == ([URL] if served is not None else [])


def test_a_failed_txt_lookup_is_a_warning_and_fetches_nothing():
    finding = mta_sts_check(
        "example.com", lookup_with([], status=TIMEOUT), mx_hosts=[], fetch_policy=serving_policy(AssertionError())
    )
    assert (finding.level, finding.reason) == (
        "warning",
        "_mta-sts.example.com: the TXT lookup failed (timeout); checked again later",
    )
    assert mta_sts_check("example.com", lookup_with([], NXDOMAIN), mx_hosts=[], fetch_policy=None).is_ok


# --- fetched over HTTPS by the DNS checks ---------------------------------------------------------------------


class PolicyHost(BaseHTTPRequestHandler):
    """GET answers server.status with server.body (a 302 to server.redirect_to when set); records (path, Host)."""

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.server.received.append((self.path, self.headers.get("Host")))
        self.send_response(self.server.status)
        if self.server.redirect_to:
            self.send_header("Location", self.server.redirect_to)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)


@pytest.fixture
def policy_host(tmp_path):
    authority = Authority(tmp_path)
    certfile, keyfile, _ = authority.issue(
        "mta-sts", not_after=datetime.now(UTC) + timedelta(days=30), names=["mta-sts.example.com"]
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    with serving(PolicyHost, tls=context, received=[], status=200, body=ENFORCE.encode(), redirect_to="") as server:
        server.cafile = str(authority.cafile)
        yield server


def mta_sts_result(domain, policy_host):
    run = DnsRun()  # one resolver for the records and the policy host's address
    check_run = domain_dns_check(
        domain, actor=SystemActor("test"), run=run, fetch_policy=mta_sts_fetcher(run, port=policy_host.server_port)
    )
    return check_run.results.get(kind="mta_sts")


LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.mark.django_db
def test_the_dns_checks_fetch_the_policy_over_https_from_the_address_their_resolver_gives(
    mail_dns, domain, policy_host, settings
):
    mail_dns.domain(records=[*right_records(), '_mta-sts TXT "v=STSv1; id=20250301"', "mta-sts A 127.0.0.1"])
    # Refused: the policy host resolves (through NSD: no other resolver knows this name) to loopback.
    result = mta_sts_result(domain, policy_host)
    assert result.level == "warning"
    assert (
        "cannot be read: MTA-STS policy host address 127.0.0.1 (of mta-sts.example.com) is a loopback address; "
        "allow it with DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS" in result.reason
    )
    assert policy_host.received == []

    # Allowed, but the certificate's CA is trusted by nobody: the certificate is checked.
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    result = mta_sts_result(domain, policy_host)
    assert result.level == "warning" and "CERTIFICATE_VERIFY_FAILED" in result.reason

    # Positive control: the CA trusted, the policy is read and allows the MX.
    settings.OUTBOUND_CA_BUNDLE = policy_host.cafile
    result = mta_sts_result(domain, policy_host)
    assert (result.level, result.reason) == ("ok", "example.com: MTA-STS mode enforce, id=20250301, max_age=86400")
    assert policy_host.received[-1] == ("/.well-known/mta-sts.txt", f"mta-sts.example.com:{policy_host.server_port}")

    policy_host.body = policy("enforce", "mx.other.example").encode()
    assert mta_sts_result(domain, policy_host).level == "failed"
    policy_host.body = policy("testing", "mx.other.example").encode()
    assert mta_sts_result(domain, policy_host).level == "warning"


@pytest.mark.parametrize(
    ("status", "redirect_to", "body", "message"),
    [
        (404, "", b"not found", "answered HTTP 404, not HTTP 200"),
        (
            302,
            "https://elsewhere.example/mta-sts.txt",
            ENFORCE.encode(),
            "answered HTTP 302 (a redirect to https://elsewhere.example; redirects are not followed), not HTTP 200",
        ),
        (200, "", ENFORCE.encode() + b"#" * 65536, "the answer is longer than 65536 bytes"),
        (200, "", b"version: STSv1\nmode: \xff\n", "answered something other than UTF-8 text"),
    ],
)
@pytest.mark.django_db
def test_a_policy_that_cannot_be_read_is_a_warning_saying_why(
    mail_dns, domain, policy_host, settings, status, redirect_to, body, message
):
    mail_dns.domain(records=[*right_records(), '_mta-sts TXT "v=STSv1; id=20250301"', "mta-sts A 127.0.0.1"])
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    settings.OUTBOUND_CA_BUNDLE = policy_host.cafile
    policy_host.status, policy_host.redirect_to, policy_host.body = status, redirect_to, body
    result = mta_sts_result(domain, policy_host)
    assert result.level == "warning"
    assert message in result.reason and "senders apply no policy they cannot fetch" in result.reason
    assert len(policy_host.received) == 1


@pytest.mark.django_db
def test_by_default_the_policy_host_is_resolved_through_the_dns_checks_resolver(mail_dns, domain):
    # No fetcher given: the default one asks the check's DnsRun (NSD) for mta-sts.example.com, nothing else.
    for address in ("127.0.0.1", "127.0.0.2"):
        mail_dns.domain(records=[*right_records(), '_mta-sts TXT "v=STSv1; id=1"', f"mta-sts A {address}"])
        result = domain_dns_check(domain, actor=SystemActor("test")).results.get(kind="mta_sts")
        assert result.level == "warning"
        assert f"policy host address {address} (of mta-sts.example.com) is a loopback address" in result.reason
