"""The policy protocol as Postfix speaks it: connections reused for many requests, unknown attributes ignored, and a
malformed, oversized or abandoned request costing only its own connection, never the server or another connection.
What is answered is counted in the file; a count that cannot be saved gets no answer."""

import datetime as dt
import socket
import sqlite3
import threading
import time

import pytest

from deliverability import policy_rules as rules
from deliverability.policy_counters import FileCounters
from deliverability.tests.policy_client import PostfixClient, ThreadServer, policy_server
from mail.tests.factories import make_domain, make_mailbox, make_tier

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(tmp_path):
    make_domain("example.com", tier=make_tier(name="small", daily_send_limit=1000))
    make_mailbox("bob@example.com")
    counters = FileCounters(tmp_path / "counters.sqlite3")
    with policy_server(counters) as running:
        yield running
    counters.close()


def raw(port, payload):
    """Send bytes as they are; the first answer that comes back, or b"" when the server closes (or 2 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(payload)
        received = b""
        try:
            while not received.endswith(b"\n\n") and (chunk := sock.recv(4096)):
                received += chunk
        except (TimeoutError, ConnectionError):
            pass
    return received


def test_one_connection_answers_a_thousand_requests_in_turn(server):
    postfix = PostfixClient(server.port)
    answers = [postfix.send("bob@example.com", ["a@gmail.com"]) for _ in range(250)]
    postfix.close()

    assert answers == [(["DUNNO"], "DUNNO", "DUNNO")] * 250
    assert server.server.served == 750


def test_unknown_attributes_are_ignored(server):
    postfix = PostfixClient(server.port)
    attributes = PostfixClient.attributes("RCPT", sender="bob@example.com", sasl_username="bob@example.com")
    answer = postfix.ask(**attributes, some_future_attribute="x", another="=y=")
    postfix.close()

    assert answer == "DUNNO"


def test_a_request_that_is_not_an_access_policy_request_is_answered_dunno(server):
    assert raw(server.port, b"request=something_else\nsender=bob@example.com\n\n") == b"action=DUNNO\n\n"


@pytest.mark.parametrize(
    "payload",
    [
        b"this line has no equals sign\n\n",
        b"=value without a name\n\n",
        b"name=" + b"x" * 10_000 + b"\n\n",
        b"".join(b"a%d=b\n" % n for n in range(500)) + b"\n",
        b"\xff\xfe\x00garbage=\x00\x01\n\n",
    ],
    ids=["no-equals", "no-name", "long-line", "too-many-attributes", "binary"],
)
def test_a_bad_request_closes_only_its_own_connection(server, payload):
    steady = PostfixClient(server.port)
    assert steady.send("bob@example.com", ["a@gmail.com"])[2] == "DUNNO"

    received = raw(server.port, payload)

    assert received in (b"", b"action=DUNNO\n\n")  # binary but well-formed is answered; the rest are dropped
    assert steady.send("bob@example.com", ["b@gmail.com"])[2] == "DUNNO"
    steady.close()


def test_a_client_that_goes_away_mid_request_harms_nobody(server):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\n")
    postfix = PostfixClient(server.port)

    assert postfix.send("bob@example.com", ["a@gmail.com"])[2] == "DUNNO"
    postfix.close()


def test_many_connections_at_once_each_get_their_own_answers(server):
    clients = [PostfixClient(server.port) for _ in range(40)]
    answers = [client.send("bob@example.com", [f"r{n}@gmail.com"]) for n, client in enumerate(clients)]
    for client in clients:
        client.close()

    assert answers == [(["DUNNO"], "DUNNO", "DUNNO")] * 40


def test_a_client_that_never_reads_its_answers_is_cut_off_and_others_go_on(server):
    request = b"request=smtpd_access_policy\nprotocol_state=CONNECT\n\n" * 1000
    cut_off = False
    with socket.create_connection(("127.0.0.1", server.port)) as greedy:
        greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        greedy.settimeout(5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                greedy.sendall(request)
            except OSError:
                cut_off = True
                break
        postfix = PostfixClient(server.port)
        assert postfix.send("bob@example.com", ["a@gmail.com"])[2] == "DUNNO"
        postfix.close()

    assert cut_off


@pytest.fixture
def counters(tmp_path):
    store = FileCounters(tmp_path / "counters.sqlite3")
    yield store
    store.close()


def test_a_client_outside_the_allowed_networks_is_refused_at_once(counters):
    import ipaddress

    make_mailbox("bob@example.com")
    with policy_server(counters, allowed_clients=[ipaddress.ip_network("127.0.0.2/32")]) as running:
        stranger = PostfixClient(running.port)  # from 127.0.0.1
        assert stranger.ask(**PostfixClient.attributes("RCPT", sender="bob@example.com")) == ""
        stranger.close()

        mail_host = PostfixClient(running.port, source="127.0.0.2")
        assert mail_host.send("bob@example.com", ["a@gmail.com"])[2] == "DUNNO"
        mail_host.close()


def test_connections_past_the_maximum_are_closed_and_the_first_ones_go_on(counters):
    make_mailbox("bob@example.com")
    with policy_server(counters, max_connections=3) as running:
        first = [PostfixClient(running.port) for _ in range(3)]
        assert all(client.send("bob@example.com", ["a@gmail.com"])[2] == "DUNNO" for client in first)

        extra = PostfixClient(running.port)
        refused = extra.ask(**PostfixClient.attributes("RCPT", sender="bob@example.com"))
        first[0].close()
        time.sleep(0.2)  # the server sees the close (another process's pace, not moved time)
        later = PostfixClient(running.port)

        assert refused == ""
        assert first[1].send("bob@example.com", ["b@gmail.com"])[2] == "DUNNO"
        assert later.send("bob@example.com", ["c@gmail.com"])[2] == "DUNNO"
        for client in (*first[1:], extra, later):
            client.close()


def test_what_is_answered_is_counted_in_the_file_even_with_many_connections_at_once(tmp_path):
    # Answers sent in one turn of the server's loop share one commit, made before any of them goes out: another
    # process (send_limits, a restarted server) finds every answered message counted.
    make_domain("example.com", tier=make_tier(name="small", daily_send_limit=100_000))
    make_mailbox("bob@example.com")
    counters = FileCounters(tmp_path / "counters.sqlite3")
    reader = FileCounters(tmp_path / "counters.sqlite3")
    key = rules.mailbox_key("bob@example.com", rules.day_of(dt.datetime.now(dt.UTC)))
    answered = []

    def sender():
        client = PostfixClient(running.port)
        for _ in range(25):
            answered.append(client.send("bob@example.com", ["a@gmail.com", "b@gmail.com"])[2])
        client.close()

    with policy_server(counters) as running:
        threads = [threading.Thread(target=sender) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answered == ["DUNNO"] * 400
        assert reader.get([key]) == [800]
    counters.close()
    reader.close()


class FailingCommit(FileCounters):
    """A counter file whose next commit fails, as a full disk would make it."""

    fail = False

    def commit(self):
        if self.fail and self.pending:
            self.fail = False
            self.rollback()
            raise sqlite3.OperationalError("database or disk is full")
        super().commit()


def test_counts_that_cannot_be_saved_get_no_answer_and_are_not_counted(tmp_path, caplog):
    make_domain("example.com", tier=make_tier(name="small", daily_send_limit=1000))
    make_mailbox("bob@example.com")
    counters = FailingCommit(tmp_path / "counters.sqlite3")
    key = rules.mailbox_key("bob@example.com", rules.day_of(dt.datetime.now(dt.UTC)))
    with policy_server(counters) as running:
        postfix = PostfixClient(running.port)
        counters.fail = True
        # Postfix reads no answer (it asks again, or applies its default action), and nothing was counted.
        assert postfix.send("bob@example.com", ["a@gmail.com"])[2] == ""
        assert counters.get([key]) == [0]
        postfix.close()
        again = PostfixClient(running.port)
        assert again.send("bob@example.com", ["a@gmail.com"])[2] == "DUNNO"
        again.close()
        assert counters.get([key]) == [1]
    counters.close()
    assert "saving the counts failed" in caplog.text


def _send_in_one_turn(running, *clients_and_requests):
    """Send each client's requests (all of them in one write) while the server's loop is busy, so that it reads them
    all in one turn. Each connection is accepted and served first."""
    for client, _ in clients_and_requests:
        assert client.ask(**PostfixClient.attributes("CONNECT", sender="")) == "DUNNO"
    busy = threading.Event()
    running.loop.call_soon_threadsafe(lambda: (busy.set(), time.sleep(0.5)))
    assert busy.wait(5)
    for client, requests in clients_and_requests:
        client.file.write(b"".join(_request_bytes(request) for request in requests))
        client.file.flush()


def _request_bytes(attributes):
    return b"".join(f"{name}={value}\n".encode() for name, value in attributes.items()) + b"\n"


def _end_of_message(sender, instance):
    return PostfixClient.attributes("END-OF-MESSAGE", sender=sender, sasl_username=sender, count=1, instance=instance)


def _fail_on(running, matches, *, counted_first=False):
    """The running server's decision raises for the requests `matches` picks (after counting them, with
    counted_first), as a bug of ours would."""
    answer = running.policy.answer

    def failing(request, seen):
        if matches(request):
            if counted_first:
                answer(request, seen)
            raise RuntimeError("a bug")
        return answer(request, seen)

    running.policy.answer = failing


def _counted_today(counters, *addresses):
    day = rules.day_of(dt.datetime.now(dt.UTC))
    return counters.get([rules.mailbox_key(address, day) for address in addresses])


@pytest.fixture
def alice_and_bob(tmp_path):
    """Two mailboxes of one tier, and the counter file a server counts them in."""
    make_domain("example.com", tier=make_tier(name="small", daily_send_limit=1000))
    make_mailbox("alice@example.com")
    make_mailbox("bob@example.com")
    counters = FileCounters(tmp_path / "counters.sqlite3")
    yield counters
    counters.close()


@pytest.mark.parametrize("wrote", [False, True], ids=["before-counting", "after-counting"])
def test_an_internal_error_on_one_connection_costs_another_only_what_it_must(alice_and_bob, caplog, wrote):
    # Alice's message and Bob's failing request are read in the same turn of the loop. A failure before Bob's
    # request counted anything closes Bob's connection only: Alice is answered and counted. A failure after it
    # counted (its count shares the turn's uncommitted transaction) undoes the turn: Alice gets no answer and is not
    # counted, so when Postfix asks again she is counted once.
    counters = alice_and_bob
    with policy_server(counters) as running:
        _fail_on(running, lambda request: request.get("sasl_username") == "bob@example.com", counted_first=wrote)
        alice, bob = PostfixClient(running.port), PostfixClient(running.port)
        _send_in_one_turn(
            running,
            (alice, [_end_of_message("alice@example.com", "a1")]),
            (bob, [_end_of_message("bob@example.com", "b1")]),
        )
        answers = [alice.read_answer(), bob.read_answer()]
        counted = _counted_today(counters, "alice@example.com", "bob@example.com")
        alice.close()
        bob.close()
    assert answers[1] == ""  # Bob: closed unanswered
    if wrote:
        assert answers[0] == "" and counted == [0, 0]
    else:
        assert answers[0] == "DUNNO" and counted == [1, 0]
    assert "internal error answering" in caplog.text


def test_a_request_read_as_the_server_stops_is_answered_and_counted(alice_and_bob):
    counters = alice_and_bob
    running = ThreadServer(counters).start()
    postfix = PostfixClient(running.port)
    _send_in_one_turn(running, (postfix, [_end_of_message("bob@example.com", "x")]))
    running.stop()  # SIGTERM's cancel lands in the same turn as the request
    answer = postfix.read_answer()
    postfix.close()
    assert answer == "DUNNO" and _counted_today(counters, "bob@example.com") == [1]


def test_a_failing_request_after_a_counted_one_on_the_same_connection_costs_the_others_nothing(alice_and_bob):
    # A client that sends two requests at once (Postfix never does): the first is counted, the second fails before
    # counting anything. Only that connection closes, after its first answer; Alice, in the same turn, is answered.
    counters = alice_and_bob
    with policy_server(counters) as running:
        _fail_on(running, lambda request: request.get("instance") == "boom")
        alice, bob = PostfixClient(running.port), PostfixClient(running.port)
        _send_in_one_turn(
            running,
            (alice, [_end_of_message("alice@example.com", "a1")]),
            (bob, [_end_of_message("bob@example.com", "b1"), _end_of_message("bob@example.com", "boom")]),
        )
        answers = [alice.read_answer(), bob.read_answer(), bob.read_answer()]
        counted = _counted_today(counters, "alice@example.com", "bob@example.com")
        alice.close()
        bob.close()
    assert answers == ["DUNNO", "DUNNO", ""]  # Bob's second request: its connection closed unanswered
    assert counted == [1, 1]
