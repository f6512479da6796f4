"""dockspace.outbound_http against real servers on loopback: every address a host resolves to is checked when
connecting (loopback, private, link-local, multicast, reserved... refused unless DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS
holds it), the connection goes to the address checked (no second lookup, or the caller's resolver alone), https
keeps the URL's name for SNI and the certificate (trusting DOCKSPACE_OUTBOUND_CA_BUNDLE too), redirects are answers,
one deadline holds the whole request, get() refuses an answer over its size. Each refusal has its positive control
(the same server reached once the allow-list admits it). The alert channels' wording of these refusals:
monitoring/tests/test_channel_addresses.py."""

import ipaddress
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import pytest
from django.core.exceptions import ImproperlyConfigured

from dockspace import outbound_http
from dockspace.env import env_ca_bundle
from dockspace.tests.certificates import Authority
from dockspace.tests.http_servers import serving

ADVICE = "allow it with DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS"


def networks(*cidrs):
    return [ipaddress.ip_network(cidr) for cidr in cidrs]


@pytest.fixture
def to_loopback(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = networks("127.0.0.0/8")


class Recorder(BaseHTTPRequestHandler):
    """Records each request as {"method", "path", "headers", "body"} in server.received; answers 204 to a POST,
    server.body (200) to a GET, or a 302 to server.redirect_to when set."""

    def log_message(self, format, *args):
        pass

    def _record(self, method):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(
            {"method": method, "path": self.path, "headers": dict(self.headers.items()), "body": body}
        )
        if self.server.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.server.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        return False

    def do_POST(self):
        if not self._record("POST"):
            self.send_response(204)
            self.end_headers()

    def do_GET(self):
        if not self._record("GET"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(self.server.body)))
            self.end_headers()
            self.wfile.write(self.server.body)


def recorder(host="127.0.0.1", tls=None, redirect_to="", body=b""):
    return serving(Recorder, host=host, tls=tls, received=[], redirect_to=redirect_to, body=body)


@pytest.fixture
def receiver():
    with recorder() as server:
        yield server


def port_of(server):
    return server.server_address[1]


def tls_server_context(tmp_path, names=("127.0.0.1",)):
    """(the server side's context with a certificate for `names`, the Authority that signed it)."""
    authority = Authority(tmp_path)
    certfile, keyfile, _ = authority.issue("server", not_after=datetime.now(UTC) + timedelta(days=30), names=names)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context, authority


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("fec0::1", "a site-local address"),
        ("100.64.0.1", "not a public address"),
        ("::ffff:127.0.0.1", "the IPv4-mapped form of 127.0.0.1, a loopback address"),
        ("::ffff:169.254.169.254", "the IPv4-mapped form of 169.254.169.254, a link-local address"),
        ("::ffff:10.1.2.3", "the IPv4-mapped form of 10.1.2.3, a private address"),
        ("2002:7f00:1::1", "the 6to4 form of 127.0.0.1, a loopback address"),
        ("2002:a9fe:a9fe::", "the 6to4 form of 169.254.169.254, a link-local address"),
        ("64:ff9b::7f00:1", "the NAT64 form of 127.0.0.1, a loopback address"),
        ("64:ff9b::a00:1", "the NAT64 form of 10.0.0.1, a private address"),
        ("93.184.215.14", ""),
        ("2606:4700:4700::1111", ""),
        ("::ffff:93.184.215.14", ""),
        ("2002:5db8:d70e::1", ""),  # 6to4 and NAT64 forms of a public address are public
        ("64:ff9b::5db8:d70e", ""),
    ],
)
def test_what_each_address_is(address, reason):
    assert outbound_http.refusal_reason(ipaddress.ip_address(address)) == reason


def test_the_allow_list_admits_its_networks_only():
    allowed = networks("127.0.0.0/8", "fd00:20::/64")
    assert outbound_http.refusal_reason(ipaddress.ip_address("127.0.0.1"), allowed) == ""
    assert outbound_http.refusal_reason(ipaddress.ip_address("::ffff:127.0.0.1"), allowed) == ""
    assert outbound_http.refusal_reason(ipaddress.ip_address("fd00:20::5"), allowed) == ""
    assert outbound_http.refusal_reason(ipaddress.ip_address("fd00:21::5"), allowed) == "a private address"
    assert outbound_http.refusal_reason(ipaddress.ip_address("::1"), allowed) == "a loopback address"
    assert outbound_http.refusal_reason(ipaddress.ip_address("10.0.0.1"), allowed) == "a private address"


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("127.0.0.1", f"address 127.0.0.1 is a loopback address; {ADVICE}"),
        ("localhost", f"(of localhost) is a loopback address; {ADVICE}"),  # 127.0.0.1 or ::1, whichever comes first
        ("2130706433", f"address 127.0.0.1 (of 2130706433) is a loopback address; {ADVICE}"),  # 127.0.0.1 as a number
    ],
)
def test_by_default_a_receiver_on_loopback_is_refused_and_gets_nothing(receiver, settings, host, message):
    url = f"http://{host}:{port_of(receiver)}/hook"
    with pytest.raises(outbound_http.RefusedAddress) as refused:
        outbound_http.post(url, b"{}", {}, timeout=2)
    assert message in str(refused.value)
    assert receiver.received == []
    # Positive control: the operator allows loopback, and the same request arrives.
    settings.OUTBOUND_ALLOWED_NETWORKS = networks("127.0.0.0/8", "::1/128")
    assert outbound_http.post(url, b"{}", {}, timeout=2).status == 204
    assert len(receiver.received) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1]:9/hook", "address ::1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "address 169.254.169.254 is a link-local address"),
        ("http://10.0.0.1:8080/hook", "address 10.0.0.1 is a private address"),
        ("https://[fd00::1]/hook", "address fd00::1 is a private address"),
        ("http://0.0.0.0:9/hook", "address 0.0.0.0 is an unspecified address"),
        ("http://[::ffff:127.0.0.1]:9/hook", "is the IPv4-mapped form of 127.0.0.1, a loopback address"),
        ("http://[::ffff:169.254.169.254]/", "is the IPv4-mapped form of 169.254.169.254, a link-local address"),
        ("http://[2002:7f00:1::1]:9/hook", "is the 6to4 form of 127.0.0.1, a loopback address"),
        ("http://[64:ff9b::a9fe:a9fe]/", "is the NAT64 form of 169.254.169.254, a link-local address"),
    ],
)
def test_internal_addresses_are_refused_before_any_connection(url, message):
    # Refused before connecting: nothing outside loopback is contacted (a broken check would time out instead).
    with pytest.raises(outbound_http.RefusedAddress, match=f"{message}; {ADVICE}"):
        outbound_http.post(url, b"{}", {}, timeout=1)


def test_an_allow_list_of_other_networks_does_not_admit_loopback(receiver, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = networks("10.0.0.0/8")
    with pytest.raises(outbound_http.RefusedAddress, match="127.0.0.1 is a loopback address"):
        outbound_http.post(f"{receiver.url}/hook", b"{}", {}, timeout=2)
    assert receiver.received == []


class LookupCounter:
    """socket.getaddrinfo as it is (the real resolver), counting the lookups of each host."""

    def __init__(self, real):
        self.real, self.hosts = real, []

    def __call__(self, host, *args, **kwargs):
        self.hosts.append(host)
        return self.real(host, *args, **kwargs)


def test_the_connection_goes_to_the_address_checked_without_a_second_lookup(receiver, settings, monkeypatch):
    # A second lookup between the check and the connection is what DNS rebinding exploits: the name may resolve
    # to a public address for the check and to an internal one for the connection.
    settings.OUTBOUND_ALLOWED_NETWORKS = networks("127.0.0.0/8", "::1/128")
    lookups = LookupCounter(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", lookups)
    outbound_http.post(f"http://localhost:{port_of(receiver)}/hook", b"{}", {}, timeout=2)
    assert lookups.hosts == ["localhost"]
    assert len(receiver.received) == 1
    assert receiver.received[0]["headers"]["Host"] == f"localhost:{port_of(receiver)}"


def test_https_keeps_the_host_name_for_sni_and_the_certificate(tmp_path, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = networks("127.0.0.0/8", "::1/128")
    context, authority = tls_server_context(tmp_path, names=["localhost"])
    names = []
    context.sni_callback = lambda connection, name, _context: names.append(name)
    with recorder(tls=context) as server:
        port = port_of(server)
        # Without DOCKSPACE_OUTBOUND_CA_BUNDLE the test's CA is trusted by nobody: the system's store only.
        with pytest.raises(outbound_http.OutboundError, match="CERTIFICATE_VERIFY_FAILED"):
            outbound_http.post(f"https://localhost:{port}/hook", b"{}", {}, timeout=2)
        settings.OUTBOUND_CA_BUNDLE = str(authority.cafile)
        assert outbound_http.post(f"https://localhost:{port}/hook", b"{}", {}, timeout=2).status == 204
        assert names[-1] == "localhost"
        assert [r["headers"]["Host"] for r in server.received] == [f"localhost:{port}"]
        # The certificate is checked against the URL's name (it names localhost, not the IP).
        with pytest.raises(outbound_http.OutboundError, match="CERTIFICATE_VERIFY_FAILED"):
            outbound_http.post(f"https://127.0.0.1:{port}/hook", b"{}", {}, timeout=2)
    assert len(server.received) == 1


def test_a_ca_bundle_that_is_not_one_stops_startup_naming_the_variable(tmp_path):
    authority = Authority(tmp_path)
    assert env_ca_bundle("X_CA", environ={"X_CA": str(authority.cafile)}) == str(authority.cafile)
    assert env_ca_bundle("X_CA", environ={}) == ""
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    for path, reason in [(tmp_path / "missing.pem", "No such file or directory"), (tmp_path / "empty.pem", "no PEM")]:
        with pytest.raises(ImproperlyConfigured, match=f"X_CA must name a readable PEM file .*{reason}"):
            env_ca_bundle("X_CA", environ={"X_CA": str(path)})


def test_a_redirect_is_an_answer_and_is_not_followed(to_loopback):
    with recorder() as inside, recorder(redirect_to=f"{inside.url}/admin?token=SECRET") as server:
        response = outbound_http.post(f"{server.url}/hook", b"{}", {}, timeout=2)
        assert response.describe() == f"HTTP 302 (a redirect to {inside.url}; redirects are not followed)"
        assert outbound_http.get(f"{server.url}/policy", timeout=2).status == 302
    assert len(server.received) == 2 and inside.received == []


# --- get(): a bounded answer, the caller's resolver ----------------------------------------------------------


def test_get_reads_an_answer_up_to_its_size_and_refuses_a_longer_one(to_loopback):
    with recorder(body=b"x" * 100) as server:
        response = outbound_http.get(f"{server.url}/.well-known/mta-sts.txt", timeout=2, max_bytes=100)
        assert (response.status, response.body) == (200, b"x" * 100)
        server.body = b"x" * 101
        with pytest.raises(outbound_http.OutboundError) as failed:
            outbound_http.get(f"{server.url}/.well-known/mta-sts.txt", timeout=2, max_bytes=100)
        assert str(failed.value) == f"{server.url}: the answer is longer than 100 bytes"
    assert [(r["method"], r["path"]) for r in server.received] == [("GET", "/.well-known/mta-sts.txt")] * 2


def test_get_is_refused_on_loopback_like_post(receiver):
    with pytest.raises(outbound_http.RefusedAddress, match=f"address 127.0.0.1 is a loopback address; {ADVICE}"):
        outbound_http.get(f"{receiver.url}/policy", timeout=2)
    assert receiver.received == []


def test_the_callers_resolver_alone_is_asked_and_its_addresses_checked(tmp_path, settings, monkeypatch):
    # A name only the caller's resolver knows (the DNS checks resolve through their own DnsRun).
    lookups = LookupCounter(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", lookups)
    asked = []

    def resolve(host):
        asked.append(host)
        return ["127.0.0.1"]

    context, authority = tls_server_context(tmp_path, names=["mta-sts.example.com"])
    settings.OUTBOUND_CA_BUNDLE = str(authority.cafile)
    with recorder(tls=context, body=b"version: STSv1\n") as server:
        url = f"https://mta-sts.example.com:{port_of(server)}/.well-known/mta-sts.txt"
        with pytest.raises(outbound_http.RefusedAddress, match="address 127.0.0.1 .of mta-sts.example.com. is a loop"):
            outbound_http.get(url, timeout=2, resolve=resolve)
        assert server.received == []
        settings.OUTBOUND_ALLOWED_NETWORKS = networks("127.0.0.0/8")  # positive control
        assert outbound_http.get(url, timeout=2, resolve=resolve).body == b"version: STSv1\n"
    assert asked == ["mta-sts.example.com"] * 2 and lookups.hosts == []
    assert server.received[0]["headers"]["Host"] == f"mta-sts.example.com:{port_of(server)}"


def test_a_name_with_one_refused_address_among_others_is_refused(receiver, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = networks("127.0.0.1/32")
    url = f"http://hook.example.com:{port_of(receiver)}/hook"
    with pytest.raises(outbound_http.RefusedAddress, match="address 10.0.0.1 .of hook.example.com. is a private"):
        outbound_http.get(url, timeout=2, resolve=lambda host: ["127.0.0.1", "10.0.0.1"])
    assert receiver.received == []
    assert outbound_http.get(url, timeout=2, resolve=lambda host: ["127.0.0.1"]).status == 200


# --- what the form can tell without DNS ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),  # how getaddrinfo (inet_aton) reads an IPv4 address: one number...
        ("0x7f000001", "127.0.0.1"),  # ...in hexadecimal...
        ("0177.0.0.1", "127.0.0.1"),  # ...octal parts...
        ("127.1", "127.0.0.1"),  # ...fewer than four parts
        ("0", "0.0.0.0"),
        ("[2002:7f00:1::1]", "2002:7f00:1::1"),
        ("[64:ff9b::a00:1]", "64:ff9b::a00:1"),
    ],
)
def test_the_early_check_reads_an_address_as_the_connection_would(host, address):
    with pytest.raises(outbound_http.RefusedAddress) as refused:
        outbound_http.check_without_lookup(f"http://{host}/hook")
    assert str(refused.value.address) == address


@pytest.mark.parametrize(
    "host", ["134744072", "0x8080808", "8.8.8.8", "[2002:808:808::1]", "[64:ff9b::808:808]", "hooks.example.com"]
)
def test_the_early_check_lets_public_addresses_and_names_through(host):
    outbound_http.check_without_lookup(f"http://{host}/hook")  # positive control: nothing refused


# --- URLs that cannot be sent as they are --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/services/T00/SECRET TOKEN?k=APIKEY",  # http.client's InvalidURL quoted the path
        "/services/T00/SECRET\tTOKEN",
        "/services/T00/SECRET?k=API\nKEY",
        "/services/T00/SECRÉT",  # http.client could not encode it (UnicodeEncodeError)
        "/services/T00/SECRET\x7f",
    ],
)
def test_a_path_or_query_that_cannot_be_sent_is_refused_naming_only_the_origin(receiver, to_loopback, path):
    url = f"{receiver.url}{path}"
    with pytest.raises(outbound_http.RefusedURL) as refused:
        outbound_http.post(url, b"{}", {}, timeout=2)
    assert str(refused.value) == (
        f"{receiver.url}: spaces, control characters and non-ASCII characters must be percent-encoded in the URL "
        "(e.g. %20)"
    )
    assert outbound_http.url_problem(url) and receiver.received == []
    # Positive control: the same URL percent-encoded is sent.
    assert outbound_http.post(f"{receiver.url}/services/T00/SECRET%20TOKEN?k=APIKEY", b"{}", {}, timeout=2)
    assert [r["path"] for r in receiver.received] == ["/services/T00/SECRET%20TOKEN?k=APIKEY"]


@pytest.mark.parametrize("url", ["http://[::1", "http://[zz]/", "http://[::1/hook"])
def test_a_malformed_url_is_refused_and_its_origin_never_raises(url):
    assert outbound_http.origin(url) == "(a malformed URL)"
    with pytest.raises(outbound_http.RefusedURL, match="is not a well-formed URL"):
        outbound_http.post(url, b"{}", {}, timeout=1)
    with pytest.raises(outbound_http.RefusedURL, match="is not a well-formed URL"):
        outbound_http.check_without_lookup(url)
    assert outbound_http.origin("http://[::1]:8080/hook") == "http://[::1]:8080"  # positive control


def test_an_http_error_names_its_class_not_its_text(receiver, to_loopback):
    # A header value http.client refuses: its ValueError quotes the value (a signature, a token).
    with pytest.raises(outbound_http.OutboundError) as failed:
        outbound_http.post(f"{receiver.url}/hook", b"{}", {"X-Token": "SECRET\r\nInjected: 1"}, timeout=2)
    assert str(failed.value) == f"{receiver.url}: ValueError"
    assert receiver.received == []


# --- one deadline for the whole request ----------------------------------------------------------------------


class Dripping(BaseHTTPRequestHandler):
    """Answers 204, its header a byte every 0.1 s (`server.drip` bytes): each read gets its byte in time, the whole
    answer takes long."""

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            self.wfile.write(b"HTTP/1.1 204 No Content\r\nX-Slow: ")
            for _ in range(self.server.drip):
                time.sleep(0.1)
                self.wfile.write(b"z")
            self.wfile.write(b"\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass  # the client gave up
        self.close_connection = True


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_answer_dripping_past_the_timeout_is_cut_off_at_it(to_loopback, tmp_path, settings, scheme):
    tls = None
    if scheme == "https":
        tls, authority = tls_server_context(tmp_path)
        settings.OUTBOUND_CA_BUNDLE = str(authority.cafile)
    with serving(Dripping, tls=tls, drip=40) as server:  # 4 s of answer, every byte 0.1 s after the last
        with pytest.raises(outbound_http.OutboundError) as failed:
            outbound_http.post(f"{server.url}/hook", b"{}", {}, timeout=1)
        assert str(failed.value) == f"{server.url}: no answer within 1 seconds"
        # Positive control: an answer that drips for less than the timeout is read.
        server.drip = 3
        assert outbound_http.post(f"{server.url}/hook", b"{}", {}, timeout=10).status == 204
