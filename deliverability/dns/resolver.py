"""The one module that sends DNS queries (pyproject's import-linter contract "dns"): a check run asks each question
once through dnspython and gets `Answer`s back, never dnspython's exceptions or objects."""

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any, cast

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.reversename
from django.conf import settings

from deliverability.dns.answer import ERROR, NODATA, NXDOMAIN, OK, SERVFAIL, TIMEOUT, Answer

RESOLV_CONF = "/etc/resolv.conf"
# EDNS0 with the DNS Flag Day 2020 buffer size: a larger answer comes back truncated and dnspython asks again over
# TCP (its resolve() does, for a truncated UDP answer, on the same server).
EDNS_PAYLOAD = 1232
# dnspython's default: a silent server is given this long before the next one is tried, within the lookup's timeout.
SERVER_TIMEOUT = 2.0
MESSAGE_LIMIT = 300
# An asynchronous run's UDP socket to a server is shared by the queries in flight to it, and takes no new query after
# this many: a fresh random source port now and then keeps a forged answer's odds near a socket per query's
# (RFC 5452 section 9.2) for a fraction of its cost.
UDP_SOCKET_QUERIES = 100

Question = tuple[str, str]  # (name, record type) as normalised: "example.com", "TXT"


# --- names ----------------------------------------------------------------------------------------


def name_text(name: dns.name.Name) -> str:
    """A name as Answers show it: lower case, without the trailing dot (IDNs in their xn-- form)."""
    return name.canonicalize().to_text(omit_final_dot=True)


def _question(name: str, rdtype: str) -> tuple[Question, dns.name.Name | None, str]:
    """((name, type) as the cache keys them, the absolute name to ask or None, why the name cannot be asked)."""
    try:
        kind = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype.strip().upper()))
    except dns.rdatatype.UnknownRdatatype:
        raise ValueError(f"unknown DNS record type {rdtype!r}") from None
    text = name.strip()
    if not text or text == ".":
        return (text, kind), None, "no name given"
    try:
        parsed = dns.name.from_text(text, origin=dns.name.root)
    except dns.exception.DNSException as exc:
        return (text.lower(), kind), None, f"not a valid DNS name: {exc}"
    canonical = parsed.canonicalize()
    return (canonical.to_text(omit_final_dot=True), kind), canonical, ""


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        raise ValueError(f"not an IP address: {address!r}") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        # A zone (fe80::1%eth0) names an interface of this host; it has no place in a DNS name.
        raise ValueError(f"a scoped IPv6 address (with a %zone) has no reverse name: {address!r}")
    # An IPv4-mapped IPv6 address (::ffff:192.0.2.1) is that IPv4 address, in reverse DNS and on a DNSBL.
    return ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip


def reverse_name(address: str) -> str:
    """The PTR name of an address: "1.2.0.192.in-addr.arpa", or 32 nibbles + "ip6.arpa". ValueError if not an IP (or
    a scoped IPv6 address, fe80::1%eth0)."""
    return name_text(dns.reversename.from_address(str(_ip(address))))


def dnsbl_query_name(address: str, zone: str) -> str:
    """The name a DNSBL is asked about an address (RFC 5782 2.1, 2.4): reversed octets (IPv4) or nibbles (IPv6)
    under the list's zone, "2.0.0.127.zen.spamhaus.org". ValueError if not an IP. The zone is not checked here:
    a name that cannot be asked (too long, an empty label) comes back from the lookup as an error answer, so one
    list's bad zone never stops a sweep of the others."""
    reversed_labels = dns.reversename.from_address(str(_ip(address))).labels[:-3]  # without in-addr/ip6.arpa.
    return ".".join(label.decode("ascii") for label in reversed_labels) + "." + zone.strip().rstrip(".").lower()


# --- answers --------------------------------------------------------------------------------------


def _record_text(rdata: Any) -> str:
    rdtype = rdata.rdtype
    if rdtype in (dns.rdatatype.TXT, dns.rdatatype.SPF):
        # RFC 7208 3.3: the strings of one record are one text, joined without a separator.
        return b"".join(rdata.strings).decode("utf-8", "backslashreplace")
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return str(rdata.address)
    if rdtype == dns.rdatatype.MX:
        return f"{rdata.preference} {name_text(rdata.exchange)}"
    if rdtype in (dns.rdatatype.PTR, dns.rdatatype.CNAME, dns.rdatatype.NS, dns.rdatatype.DNAME):
        return name_text(rdata.target)
    return str(rdata.to_text())


def _record_order(rdtype: str, text: str) -> tuple[int, str]:
    """Records sorted, MX by preference, so two answers holding the same records compare equal."""
    if rdtype == "MX":
        preference, _, exchange = text.partition(" ")
        return int(preference), exchange
    return 0, text


def _ok(question: Question, rrset: Iterable[Any]) -> Answer:
    name, kind = question
    records = sorted((_record_text(rdata) for rdata in rrset), key=lambda text: _record_order(kind, text))
    return Answer(name, kind, OK, tuple(records))


def _short(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def _server_errors(errors: Sequence[tuple[Any, ...]]) -> tuple[bool, str]:
    """(whether a server answered SERVFAIL, one line per server) from dnspython's (server, tcp, port, error,
    response) trace."""
    servfail, lines = False, []
    for server, _tcp, _port, error, _response in errors:
        if isinstance(error, str):  # an rcode the resolver gave up on: "SERVFAIL", "REFUSED", ...
            servfail = servfail or error == "SERVFAIL"
            line = f"{server} answered {error}"
        elif isinstance(error, OSError) and error.strerror:
            line = f"{server}: {error.strerror}"
        else:
            line = f"{server}: {type(error).__name__}: {error}".rstrip(": ")
        if line not in lines:
            lines.append(line)
    return servfail, "; ".join(lines)


def failure(question: Question, exc: BaseException, timeout: float) -> Answer:
    """The Answer for what dnspython raised: the status, and a one-line reason (never a traceback)."""
    name, kind = question
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return Answer(name, kind, NXDOMAIN)
    if isinstance(exc, dns.resolver.NoAnswer):
        return Answer(name, kind, NODATA)
    if isinstance(exc, dns.exception.Timeout):  # LifetimeTimeout: the lookup's whole time is used up
        return Answer(name, kind, TIMEOUT, error=f"no answer within {timeout:g} s")
    if isinstance(exc, dns.resolver.NoNameservers):
        servfail, reasons = _server_errors(exc.kwargs.get("errors") or [])
        return Answer(name, kind, SERVFAIL if servfail else ERROR, error=_short(reasons or "no server answered"))
    if isinstance(exc, dns.resolver.NoResolverConfiguration):
        reason = f"no nameserver to ask: {RESOLV_CONF} lists none (or set DOCKSPACE_DNS_RESOLVER)"
        return Answer(name, kind, ERROR, error=reason)
    return Answer(name, kind, ERROR, error=_short(str(exc) or type(exc).__name__))


# --- the asynchronous run's UDP transport ----------------------------------------------------------
# dnspython's async udp() opens a socket per query and writes and reads each message in full: most of a DNSBL sweep's
# CPU. Here the queries in flight to a server share one socket, a query's bytes are those dnspython wrote for the
# first query of its kind with the ID and name put in, and an NXDOMAIN is read up to its question. dnspython's
# resolve() still decides everything else (retries, the next server, TCP after a truncated answer, what an answer
# means).


class UdpChannel:
    """One UDP socket to one DNS server, shared by the queries in flight to it: at most UDP_SOCKET_QUERIES of them
    over its life, and it closes as soon as none is left. A datagram goes to the query whose ID it carries if
    dnspython reads it as that query's answer (`Message.is_response`: same ID, same question); anything else (from
    another address, malformed, forged, or an answer to a query that timed out) is dropped, as dnspython's udp()
    drops it, and the query keeps waiting."""

    def __init__(self, loop: asyncio.AbstractEventLoop, address: str, port: int) -> None:
        self.loop = loop
        self.family = dns.inet.af_for_address(address)
        self.destination = dns.inet.low_level_address_tuple((address, port), self.family)
        self.packed_address = dns.inet.inet_pton(self.family, self.destination[0])
        self.pending: dict[int, tuple[dns.message.QueryMessage, asyncio.Future[dns.message.Message]]] = {}
        self.sent = 0
        self.closed = False
        self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            self.sock.setblocking(False)
            loop.add_reader(self.sock.fileno(), self._read)
        except BaseException:
            self.sock.close()
            raise

    def takes_queries(self, loop: asyncio.AbstractEventLoop) -> bool:
        return not self.closed and self.loop is loop and self.sent < UDP_SOCKET_QUERIES

    async def query(self, request: dns.message.QueryMessage, timeout: float) -> dns.message.Message:
        """The answer to `request`; dns.message.Truncated for a truncated one, dns.exception.Timeout when none came
        within `timeout` seconds, OSError when it cannot be sent (what dnspython's udp() raises)."""
        while request.id in self.pending:  # two queries in flight on one socket never share an ID
            request.set_random_id()
        ident = request.id
        future: asyncio.Future[dns.message.Message] = self.loop.create_future()
        self.pending[ident] = (request, future)
        self.sent += 1
        timer = self.loop.call_later(timeout, _time_out, future, timeout)
        try:
            await self.loop.sock_sendto(self.sock, query_wire(request), self.destination)
            return await future
        finally:
            timer.cancel()
            if ident in self.pending and self.pending[ident][1] is future:
                del self.pending[ident]
            if not self.pending:
                self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def _read(self) -> None:
        while True:
            try:
                wire, source = self.sock.recvfrom(65535)
            except OSError:  # nothing left to read (or an error): queries without an answer time out
                return
            if len(wire) < 12 or not self._from_server(source):
                continue
            entry = self.pending.get(int.from_bytes(wire[:2], "big"))
            if entry is None:  # no query in flight with this ID: an answer that came too late, or a forged one
                continue
            request, future = entry
            response = read_response(request, wire)
            if response is None or future.done():
                continue
            del self.pending[request.id]
            if isinstance(response, dns.message.Truncated):
                future.set_exception(response)
            else:
                future.set_result(response)

    def _from_server(self, source: Any) -> bool:
        if source[1:] != self.destination[1:]:
            return False
        try:
            return source[0] == self.destination[0] or dns.inet.inet_pton(self.family, source[0]) == self.packed_address
        except dns.exception.SyntaxError:
            return False


def _time_out(future: asyncio.Future[dns.message.Message], timeout: float) -> None:
    if not future.done():
        future.set_exception(dns.exception.Timeout(timeout=timeout))


# (type, class, flags, EDNS settings) -> the bytes of such a query after its ID and before its name, and after its name.
_query_templates: dict[tuple[int, ...], tuple[bytes, bytes]] = {}


def query_wire(request: dns.message.QueryMessage) -> bytes:
    """`request.to_wire()`. A query with one question, EDNS without options and nothing else holds one name, which
    nothing can point to, so it is its ID, fixed bytes, the name, fixed bytes: the fixed bytes are taken from
    dnspython's to_wire() of the first such query and reused."""
    if (
        len(request.question) != 1
        or request.answer
        or request.authority
        or request.additional
        or request.options
        or request.tsig is not None
        or request.origin is not None
    ):
        return request.to_wire()
    question = request.question[0]
    key = (
        question.rdtype,
        question.rdclass,
        request.flags,
        request.edns,
        request.ednsflags,
        request.payload,
        request.pad,
    )
    name = cast(bytes, question.name.to_wire())  # without a file to write to, to_wire() returns the bytes
    template = _query_templates.get(key)
    if template is None:
        wire = request.to_wire()
        _query_templates[key] = (wire[2:12], wire[12 + len(name) :])
        return wire
    return request.id.to_bytes(2, "big") + template[0] + name + template[1]


def read_response(request: dns.message.QueryMessage, wire: bytes) -> dns.message.Message | dns.message.Truncated | None:
    """The answer to `request` in `wire` as dnspython's udp() reads it for its resolver (raise on truncation, ignore
    errors): the Message; Truncated when the TC bit is set; None when it is not an answer to `request` (another ID
    or question) or not a DNS message. An NXDOMAIN with nothing in its answer section (most of a DNSBL's answers)
    is read up to its question (`QuestionOnlyNxdomain`): the zone's SOA after it says only how long to cache."""
    flags, answer_count = int.from_bytes(wire[2:4], "big"), int.from_bytes(wire[6:8], "big")
    question_only = (
        flags & 0x0F == dns.rcode.NXDOMAIN
        and answer_count == 0
        and not flags & dns.flags.TC
        and request.keyring is None  # a signed answer is checked in full
    )
    try:
        response = dns.message.from_wire(
            wire,
            keyring=request.keyring,
            request_mac=request.mac,
            question_only=question_only,
            raise_on_truncation=True,
        )
    except dns.message.Truncated as exc:
        return exc if request.is_response(exc.message()) else None
    except Exception:  # not a DNS message dnspython can read: udp() ignores it too
        return None
    if not request.is_response(response):
        return None
    if question_only:
        response.__class__ = QuestionOnlyNxdomain  # from_wire() takes no message class
    return response


class QuestionOnlyNxdomain(dns.message.QueryMessage):
    """An NXDOMAIN answer read up to its question (read_response), its answer section empty: there is no CNAME to
    follow, so the chain ends at the question's name, without records. dnspython's own resolve_chaining() would
    also walk up that name, label by label, looking for the SOA of the zone to take a negative TTL from, which no
    run keeps (and which was not read)."""

    def resolve_chaining(self) -> dns.message.ChainingResult:
        if len(self.question) != 1:
            raise dns.exception.FormError
        return dns.message.ChainingResult(self.question[0].name, None, dns.message.NEGATIVE_TTL_WITHOUT_SOA, [])


# --- resolvers ------------------------------------------------------------------------------------


class CountingNameserver(dns.nameserver.Do53Nameserver):
    """A plain DNS server (UDP, TCP after a truncated answer) that counts every message sent to it in its run.
    Asynchronous UDP queries share a socket (`UdpChannel`) instead of dnspython's socket per query."""

    def __init__(self, address: str, port: int, run: "BaseDnsRun") -> None:
        super().__init__(address, port)
        self.run = run
        self._channel: UdpChannel | None = None

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    def query(self, *args: Any, **kwargs: Any) -> dns.message.Message:
        self.run.queries_sent += 1
        return super().query(*args, **kwargs)

    async def async_query(
        self,
        request: dns.message.QueryMessage,
        timeout: float,
        source: str | None,
        source_port: int,
        max_size: bool,
        backend: Any,
        one_rr_per_rrset: bool = False,
        ignore_trailing: bool = False,
    ) -> dns.message.Message:
        self.run.queries_sent += 1
        if max_size or source or source_port or one_rr_per_rrset or ignore_trailing:  # TCP (after a truncation)
            return await super().async_query(
                request, timeout, source, source_port, max_size, backend, one_rr_per_rrset, ignore_trailing
            )
        loop = asyncio.get_running_loop()
        channel = self._channel
        if channel is None or not channel.takes_queries(loop):
            channel = self._channel = UdpChannel(loop, self.address, self.port)
        return await channel.query(request, timeout)


def system_nameservers(path: str | None = None) -> list[tuple[str, int]]:
    """The nameservers of a resolv.conf file (RESOLV_CONF unless given), port 53. NoResolverConfiguration when it
    cannot be read or lists none."""
    system = dns.resolver.Resolver(filename=path or RESOLV_CONF, configure=True)
    return [(str(server), 53) for server in system.nameservers if dns.inet.is_address(str(server))]


def nameservers_in_use() -> tuple[list[tuple[str, int]], str]:
    """The recursive resolvers the checks ask and where they come from: DOCKSPACE_DNS_RESOLVER's, else the
    nameservers of RESOLV_CONF ([] when it cannot be read or lists none)."""
    if settings.DNS_NAMESERVERS:
        return list(settings.DNS_NAMESERVERS), "DOCKSPACE_DNS_RESOLVER"
    try:
        return system_nameservers(), RESOLV_CONF
    except dns.resolver.NoResolverConfiguration:
        return [], RESOLV_CONF


class BaseDnsRun:
    """What both runs share: the servers asked, the timeout, the answers so far, the messages sent."""

    resolver_class: type[dns.resolver.BaseResolver] = dns.resolver.BaseResolver

    def __init__(self, nameservers: Sequence[tuple[str, int]] | None = None, timeout: float | None = None) -> None:
        # None: the settings (DOCKSPACE_DNS_RESOLVER, DOCKSPACE_DNS_TIMEOUT); no servers: the system's resolv.conf.
        self.nameservers = list(settings.DNS_NAMESERVERS if nameservers is None else nameservers)
        self.timeout = float(settings.DNS_TIMEOUT if timeout is None else timeout)
        # DNS messages sent, a retry after a timeout or over TCP after a truncated answer included.
        self.queries_sent = 0
        self._resolver: Any = None

    def _make_resolver(self) -> Any:
        """The configured dnspython resolver, made at the first question that goes out (so a missing resolv.conf
        is an error Answer, like any other failure)."""
        if self._resolver is None:
            servers = self.nameservers or system_nameservers()
            resolver = self.resolver_class(configure=False)
            resolver.nameservers = [CountingNameserver(address, port, self) for address, port in servers]
            resolver.lifetime = self.timeout
            resolver.timeout = min(SERVER_TIMEOUT, self.timeout)
            resolver.use_edns(0, 0, EDNS_PAYLOAD)
            resolver.cache = None  # the run's own answers are the only cache: a new run sees today's records
            self._resolver = resolver
        return self._resolver


class DnsRun(BaseDnsRun):
    """One check run (one thread): `lookup(name, rdtype)` asks each question once; later asks are answered from
    the run's memory. Names are made absolute (never the search domains) and lower case."""

    resolver_class = dns.resolver.Resolver

    def __init__(self, nameservers: Sequence[tuple[str, int]] | None = None, timeout: float | None = None) -> None:
        super().__init__(nameservers, timeout)
        self.answers: dict[Question, Answer] = {}

    def lookup(self, name: str, rdtype: str) -> Answer:
        question, qname, invalid = _question(name, rdtype)
        if question not in self.answers:
            self.answers[question] = self._ask(question, qname, invalid)
        return self.answers[question]

    def _ask(self, question: Question, qname: dns.name.Name | None, invalid: str) -> Answer:
        if qname is None:
            return Answer(*question, ERROR, error=invalid)
        try:
            # CNAMEs are followed by dnspython (the answer holds the records of the chain's end).
            result = self._make_resolver().resolve(qname, question[1], search=False)
        except dns.exception.DNSException as exc:
            return failure(question, exc, self.timeout)
        return _ok(question, result.rrset or ())


class AsyncDnsRun(BaseDnsRun):
    """DnsRun for asyncio (the DNSBL sweep): at most `concurrency` questions in flight; a question asked again
    while it is in flight waits for that one answer."""

    resolver_class = dns.asyncresolver.Resolver

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] | None = None,
        timeout: float | None = None,
        concurrency: int | None = None,
    ) -> None:
        super().__init__(nameservers, timeout)
        self.concurrency = int(settings.DNS_CONCURRENCY if concurrency is None else concurrency)
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1; got {self.concurrency}")
        self._slots = asyncio.Semaphore(self.concurrency)
        self._answers: dict[Question, asyncio.Task[Answer]] = {}

    @property
    def answers(self) -> dict[Question, Answer]:
        return {question: task.result() for question, task in self._answers.items() if task.done()}

    async def lookup(self, name: str, rdtype: str) -> Answer:
        # A caller that gives up (cancelled) does not cancel the question for the others waiting on it.
        return await asyncio.shield(self._task(name, rdtype))

    async def lookup_many(self, questions: Iterable[tuple[str, str]]) -> list[Answer]:
        """The answers to (name, rdtype) pairs, in their order. They are taken up in that order, `concurrency` at a
        time, so the first queries go out at once rather than after every question has been read."""
        asked = list(questions)
        answers: list[Any] = [None] * len(asked)
        queue = iter(enumerate(asked))

        async def take_up() -> None:
            for index, (name, rdtype) in queue:
                answers[index] = await self.lookup(name, rdtype)

        workers = [asyncio.ensure_future(take_up()) for _ in range(min(self.concurrency, len(asked)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:  # after a failure, or when the caller gives up: no question is taken up any more
                worker.cancel()
        return answers

    def _task(self, name: str, rdtype: str) -> "asyncio.Task[Answer]":
        question, qname, invalid = _question(name, rdtype)
        task = self._answers.get(question)
        if task is None:
            task = self._answers[question] = asyncio.ensure_future(self._ask(question, qname, invalid))
        return task

    async def _ask(self, question: Question, qname: dns.name.Name | None, invalid: str) -> Answer:
        if qname is None:
            return Answer(*question, ERROR, error=invalid)
        async with self._slots:
            try:
                result = await self._make_resolver().resolve(qname, question[1], search=False)
            except dns.exception.DNSException as exc:
                return failure(question, exc, self.timeout)
        return _ok(question, result.rrset or ())
