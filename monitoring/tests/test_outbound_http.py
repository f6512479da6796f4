"""Alert webhooks and Telegram cannot be pointed at Dockspace's own network: every address a host resolves to is
checked when connecting (loopback, private, link-local, multicast, reserved... refused unless
DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS holds it), the connection goes to the address checked (no second lookup), and
https keeps the URL's name for SNI and the certificate. Receivers are real servers on loopback; each refusal has
its positive control (the same receiver reached once the allow-list admits it)."""

import ipaddress
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import pytest
import time_machine
from django.test import TestCase

from monitoring import alert_services, channels, outbound_http
from monitoring.alert_models import AlertEvent, NotificationChannel
from monitoring.standard_webhooks import generate_secret
from monitoring.tests.factories import switch, switch_rule, telegram_channel, webhook_channel
from monitoring.tests.stand_ins import serving, telegram_stand_in, webhook_receiver
from monitoring.tests.test_probe_tls import Authority

pytestmark = pytest.mark.django_db

ADVICE = "allow it with DOCKSPACE_OUTBOUND_ALLOWED_NETWORKS"
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw-"


def networks(*cidrs):
    return [ipaddress.ip_network(cidr) for cidr in cidrs]


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


@pytest.fixture
def receiver():
    secret = generate_secret()
    with webhook_receiver(secret) as server:
        server.secret_value = secret
        yield server


def port_of(server):
    return server.server_address[1]


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
    assert outbound_http.post(url, b"{}", {}, timeout=2).status == 400  # the receiver's answer to an unsigned body
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


def test_a_refused_webhook_fails_the_send_test_and_the_notification_at_once(receiver, settings):
    channel = webhook_channel(receiver.url + "/hook", receiver.secret_value)
    outcome = alert_services.channel_send_test(channel=channel, actor_label="test")
    expected = f"webhook address 127.0.0.1 is a loopback address; {ADVICE}"
    assert not outcome.is_sent and outcome.text == f"Test notification to Ops webhook failed: {expected}"
    assert AlertEvent.objects.get(kind="test").error == expected

    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    switch_rule(channel, for_seconds=0)
    switch(is_on=True)
    with time_machine.travel(start, tick=False), TestCase.captureOnCommitCallbacks(execute=True):
        alert_services.alerts_evaluate()
    event = AlertEvent.objects.get(kind="fired")
    assert (event.status, event.attempts, event.error) == ("failed", 1, expected)  # permanent: not retried
    assert receiver.received == []

    # Positive control: allowed, the same channel's test arrives signed.
    settings.OUTBOUND_ALLOWED_NETWORKS = networks("127.0.0.0/8")
    assert alert_services.channel_send_test(channel=channel, actor_label="test").is_sent
    assert [r["payload"]["type"] for r in receiver.received] == ["alert.test"]


def test_a_telegram_api_on_loopback_is_refused_unless_allowed(settings):
    with telegram_stand_in() as bot:
        settings.ALERT_TELEGRAM_API_BASE = bot.url
        channel = telegram_channel(TOKEN)
        with pytest.raises(channels.ChannelError) as refused:
            channels.deliver(channel, {"type": "alert.test", "timestamp": "", "data": {"title": "t"}}, "msg_1")
        assert str(refused.value) == f"Telegram address 127.0.0.1 is a loopback address; {ADVICE}"
        assert refused.value.permanent and TOKEN not in str(refused.value)
        assert bot.received == []
        settings.OUTBOUND_ALLOWED_NETWORKS = networks("127.0.0.0/8")
        channels.deliver(channel, {"type": "alert.test", "timestamp": "", "data": {"title": "t"}}, "msg_1")
        assert len(bot.received) == 1


def test_a_redirect_to_a_refused_address_is_not_followed(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = networks("127.0.0.1/32")  # 127.0.0.2 stays refused
    secret = generate_secret()
    with (
        webhook_receiver(secret, host="127.0.0.2") as inside,
        webhook_receiver(secret, redirect_to=inside.url + "/admin") as receiver,
    ):
        with pytest.raises(outbound_http.RefusedAddress, match="127.0.0.2 is a loopback address"):
            outbound_http.post(inside.url, b"{}", {}, timeout=2)  # the redirect's target is one the check refuses
        outcome = alert_services.channel_send_test(channel=webhook_channel(receiver.url, secret), actor_label="test")
    assert not outcome.is_sent
    assert f"HTTP 302 (a redirect to {inside.url}; redirects are not followed)" in outcome.text
    assert len(receiver.received) == 1 and inside.received == []


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


class Recorder(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.hosts.append(self.headers.get("Host"))
        self.send_response(204)
        self.end_headers()


def test_https_keeps_the_host_name_for_sni_and_the_certificate(tmp_path, settings, monkeypatch):
    settings.OUTBOUND_ALLOWED_NETWORKS = networks("127.0.0.0/8", "::1/128")
    authority = Authority(tmp_path)
    in_a_month = datetime.now(UTC) + timedelta(days=30)
    certfile, keyfile, _ = authority.issue("hook", not_after=in_a_month, names=["localhost"])
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.cafile))  # what ssl.create_default_context() trusts
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    names = []
    context.sni_callback = lambda connection, name, _context: names.append(name)
    with serving(Recorder, tls=context, hosts=[]) as server:
        port = port_of(server)
        assert outbound_http.post(f"https://localhost:{port}/hook", b"{}", {}, timeout=2).status == 204
        assert names == ["localhost"] and server.hosts == [f"localhost:{port}"]
        # Positive control: the certificate is checked against the URL's name (it names localhost, not the IP).
        with pytest.raises(outbound_http.OutboundError, match="CERTIFICATE_VERIFY_FAILED"):
            outbound_http.post(f"https://127.0.0.1:{port}/hook", b"{}", {}, timeout=2)
    assert server.hosts == [f"localhost:{port}"]


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
def test_a_path_or_query_that_cannot_be_sent_is_refused_naming_only_the_origin(receiver, outbound_to_loopback, path):
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


def test_a_send_test_to_such_a_url_fails_and_shows_neither_path_nor_query(receiver, outbound_to_loopback):
    channel = webhook_channel(receiver.url + "/ok", receiver.secret_value)
    for path in ["/services/T00/SECRET TOKEN?k=APIKEY", "/services/T00/SECRÉT"]:
        NotificationChannel.objects.filter(pk=channel.pk).update(webhook_url=receiver.url + path)  # an older row
        channel.refresh_from_db()
        outcome = alert_services.channel_send_test(channel=channel, actor_label="test")
        event = AlertEvent.objects.filter(kind="test").latest("id")
        expected = f"{receiver.url}: spaces, control characters and non-ASCII characters must be percent-encoded"
        assert (outcome.is_sent, event.status) == (False, "failed")
        assert outcome.text.startswith(f"Test notification to Ops webhook failed: {expected}")
        assert event.error.startswith(expected)
        assert not any(word in outcome.text + event.error for word in ("SECRET", "APIKEY"))
    assert receiver.received == []


def test_a_telegram_token_from_a_variable_is_checked_like_a_stored_one(outbound_to_loopback, monkeypatch, settings):
    with telegram_stand_in() as bot:
        settings.ALERT_TELEGRAM_API_BASE = bot.url
        channel = telegram_channel(TOKEN, secret_env="DOCKSPACE_ALERT_BOT")
        monkeypatch.setenv("DOCKSPACE_ALERT_BOT", TOKEN + " ")  # a trailing space, as an env file may leave it
        with pytest.raises(channels.ChannelError) as refused:
            channels.deliver(channel, {"type": "alert.test", "timestamp": "", "data": {"title": "t"}}, "msg_1")
        assert str(refused.value).startswith("the bot token in DOCKSPACE_ALERT_BOT is not one as @BotFather gives it")
        assert refused.value.permanent and TOKEN.partition(":")[2] not in str(refused.value)
        assert bot.received == []
        # Positive control: the same token without the space is sent.
        monkeypatch.setenv("DOCKSPACE_ALERT_BOT", TOKEN)
        channels.deliver(channel, {"type": "alert.test", "timestamp": "", "data": {"title": "t"}}, "msg_1")
        assert [r["token"] for r in bot.received] == [TOKEN]


def test_an_http_error_names_its_class_not_its_text(receiver, outbound_to_loopback):
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
def test_an_answer_dripping_past_the_timeout_is_cut_off_at_it(outbound_to_loopback, tmp_path, monkeypatch, scheme):
    tls = None
    if scheme == "https":
        authority = Authority(tmp_path)
        certfile, keyfile, _ = authority.issue("hook", not_after=datetime.now(UTC) + timedelta(days=30))
        monkeypatch.setenv("SSL_CERT_FILE", str(authority.cafile))
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(certfile, keyfile)
    with serving(Dripping, tls=tls, drip=40) as server:  # 4 s of answer, every byte 0.1 s after the last
        with pytest.raises(outbound_http.OutboundError) as failed:
            outbound_http.post(f"{server.url}/hook", b"{}", {}, timeout=1)
        assert str(failed.value) == f"{server.url}: no answer within 1 seconds"
        # Positive control: an answer that drips for less than the timeout is read.
        server.drip = 3
        assert outbound_http.post(f"{server.url}/hook", b"{}", {}, timeout=10).status == 204
