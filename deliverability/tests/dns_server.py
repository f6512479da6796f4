"""DNS servers on loopback for the resolver's tests and the DNS benchmark: a real authoritative NSD serving zone files
a test writes (`DnsServer`), a server that reads queries and never answers (`SilentDnsServer`) or answers as a test
scripts it (`ScriptedDnsServer`), and a UDP forwarder that holds each query N seconds and counts how many are in flight
at once (`LatencyProxy`).

Use the pytest fixtures (`dns_server`, `silent_dns_server` in deliverability/tests/conftest.py), or the classes
directly. Needs /usr/sbin/nsd and nsd-checkzone (Debian: nsd); tests skip without them. Raw DNS packets here are
built by hand: dnspython is the resolver module's alone (pyproject's import-linter contract "dns").
"""

import asyncio
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from dockspace.tests.ports import free_port as free_loopback_port

NSD = "/usr/sbin/nsd"
NSD_CHECKZONE = "/usr/sbin/nsd-checkzone"
LOOPBACK = "127.0.0.1"
SOA = 6
_START_TIMEOUT = 10


def require_nsd():
    if not (os.access(NSD, os.X_OK) and os.access(NSD_CHECKZONE, os.X_OK)):
        pytest.skip("NSD is not installed (Debian package nsd; CI installs it)")


def free_port():
    """A loopback port free for both UDP and TCP (a DNS server listens on both)."""
    return free_loopback_port(LOOPBACK, udp=True)


def query_packet(name, qtype, ident=0x5151):
    """A DNS query (no recursion asked) for NAME and the numeric type QTYPE."""
    labels = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.strip(".").split(".") if label)
    return struct.pack("!HHHHHH", ident, 0, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def response_code(packet):
    return packet[3] & 0x0F


def question_of(packet):
    """(name, numeric type, the question's bytes) of a DNS message with one question."""
    labels, end = [], 12
    while packet[end]:
        labels.append(packet[end + 1 : end + 1 + packet[end]].decode("ascii"))
        end += 1 + packet[end]
    end += 5  # the root label, type and class
    return ".".join(labels), struct.unpack("!H", packet[end - 4 : end - 2])[0], packet[12:end]


def answer_packet(query, addresses=(), *, rcode=0, ident=None, name=None):
    """An answer to QUERY: A records of ADDRESSES for its name (NXDOMAIN is rcode 3, no addresses). IDENT and NAME
    (a question's bytes, say another query's) forge an answer that is not to QUERY."""
    _, _, question = question_of(query)
    header = struct.pack("!HHHHHH", 0, 0x8180 | rcode, 1, len(addresses), 0, 0)  # QR, RD, RA
    records = b"".join(struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + socket.inet_aton(address) for address in addresses)
    return (query[:2] if ident is None else struct.pack("!H", ident)) + header[2:] + (name or question) + records


class DnsServer:
    """NSD answering authoritatively on 127.0.0.1:`port` (UDP and TCP) for the zones given to `zone()`, as an
    unprivileged foreground process whose files all live under `root` (nothing in /etc or /var)."""

    def __init__(self, root, port=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.zones = {}  # name -> zone file name, or None: configured without a file (NSD answers SERVFAIL)
        self.serial = 0
        self.process = None

    @property
    def nameservers(self):
        """The server as the resolver's settings name it (settings.DNS_NAMESERVERS)."""
        return [(LOOPBACK, self.port)]

    def zone(self, name, records=()):
        """Serve the zone NAME with RECORDS (zone-file lines such as "@ MX 10 mail", "mail A 192.0.2.25",
        '@ TXT "v=spf1 " "-all"'; names relative to the zone unless they end with a dot) plus its SOA and NS.
        A running server is restarted to serve it when this returns."""
        name = name.strip(".").lower()
        self.serial += 1
        text = "\n".join(
            [
                f"$ORIGIN {name}.",
                "$TTL 300",
                f"@ IN SOA ns.{name}. hostmaster.{name}. {self.serial} 3600 600 86400 300",
                "@ IN NS ns.invalid.",
                *records,
                "",
            ]
        )
        path = self.root / f"{name}.zone"
        path.write_text(text)
        checked = subprocess.run([NSD_CHECKZONE, name, str(path)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise ValueError(f"zone {name} does not load: {(checked.stdout + checked.stderr).strip()}")
        self.zones[name] = path.name
        return self._apply()

    def failing_zone(self, name):
        """A zone NSD is configured for but cannot load: it answers SERVFAIL for every name in it."""
        self.zones[name.strip(".").lower()] = None
        return self._apply()

    def _apply(self):
        if self.process is not None:
            self.restart()
        return self

    def _config(self):
        lines = [
            "server:",
            f"    ip-address: {LOOPBACK}@{self.port}",
            "    do-ip6: no",
            '    username: ""',
            '    chroot: ""',
            f'    zonesdir: "{self.root}"',
            '    pidfile: ""',
            '    database: ""',
            '    xfrdfile: ""',
            f'    xfrdir: "{self.root}"',
            f'    zonelistfile: "{self.root / "zone.list"}"',
            f'    cookie-secret-file: "{self.root / "cookiesecrets.txt"}"',
            f'    logfile: "{self.root / "nsd.log"}"',
            "    server-count: 1",
            "    hide-version: yes",
            # NSD's response rate limiting (200 answers a second per client and zone by default) drops some answers
            # of a fast burst from loopback, which then time out: a test or the benchmark would measure that.
            "    rrl-ratelimit: 0",
            "    zonefiles-check: no",
            "remote-control:",
            "    control-enable: no",
        ]
        for name, zonefile in sorted(self.zones.items()):
            lines += ["zone:", f"    name: {name}", f'    zonefile: "{zonefile or f"{name}.missing"}"']
        path = self.root / "nsd.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self):
        (self.root / "nsd.log").write_text("")
        with (self.root / "nsd.out").open("wb") as out:
            # A session of its own, so a stop that has to kill reaches NSD's child processes too.
            self.process = subprocess.Popen(
                [NSD, "-d", "-c", str(self._config())], stdout=out, stderr=out, start_new_session=True
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            if self._answers_every_zone():
                return self
        self.stop()
        raise RuntimeError(f"nsd did not start on port {self.port}: {self.log()[-2000:]}")

    def _answers_every_zone(self):
        """True once NSD answers the SOA of each loadable zone (or anything at all, with none)."""
        loadable = [name for name, zonefile in self.zones.items() if zonefile] or ["."]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.05)
            for name in loadable:
                try:
                    sock.sendto(query_packet(name, SOA), (LOOPBACK, self.port))
                    reply = sock.recv(4096)
                except OSError:  # not listening yet (refused) or no answer yet
                    return False
                if name != "." and response_code(reply) != 0:
                    return False
        return True

    def stop(self):
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def restart(self):
        self.stop()
        return self.start()

    def log(self):
        return "".join(
            (self.root / name).read_text(errors="replace")
            for name in ("nsd.log", "nsd.out")
            if (self.root / name).exists()
        )

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _UdpListener:
    """A UDP socket on 127.0.0.1 read by a thread until stop(); subclasses say what to do with each datagram."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = None

    @property
    def nameservers(self):
        return [(LOOPBACK, self.port)]

    def start(self):
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self):
        while not self.stopping.is_set():
            try:
                data, client = self.sock.recvfrom(65535)
            except OSError:
                continue
            with self.lock:
                self.received += 1
            self.handle(data, client)

    def handle(self, data, client):
        pass

    def stop(self):
        self.stopping.set()
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        self.finish()
        self.sock.close()

    def finish(self):
        """After the last datagram is read, before the socket closes."""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SilentDnsServer(_UdpListener):
    """A "DNS server" that reads every query (`received` counts them) and never answers: a dead resolver."""


class ScriptedDnsServer(_UdpListener):
    """A "DNS server" that keeps every query it reads, with the client's address, in `queries` and answers as the
    test's `script(server)` says, called in its thread after each query: `server.send(packet, client)`."""

    def __init__(self, script):
        super().__init__()
        self.script = script
        self.queries = []

    def handle(self, data, client):
        self.queries.append((data, client))
        self.script(self)

    def send(self, packet, client):
        self.sock.sendto(packet, client)


class LatencyProxy:
    """Forwards each UDP query to 127.0.0.1:`upstream_port` after `latency` seconds and relays the answer back
    (UDP only: a truncated answer's TCP retry is not proxied). Counts the queries `received` and the most that
    were ever `outstanding` at once (received, not yet answered).

    One asyncio loop in one thread does it all (timers for the delay, one upstream socket, the query ID rewritten
    to tell the answers apart): a thread per query cost as much CPU as the resolver it serves, and both share the
    GIL when the proxy runs inside the process it measures (bench/dnsbl_sweep.py)."""

    UPSTREAM_TIMEOUT = 5.0  # no answer upstream within this: the query is dropped and the client times out

    def __init__(self, upstream_port, latency):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.upstream = (LOOPBACK, upstream_port)
        self.latency = latency
        self.received = 0
        self.outstanding = 0
        self.max_outstanding = 0
        self.loop = None
        self.thread = None
        self._clients = None  # the transport on self.sock
        self._upstream = None  # the transport to the server
        self._pending = {}  # proxy query ID -> (client address, client's query ID, expiry timer)
        self._next_id = 0

    @property
    def nameservers(self):
        return [(LOOPBACK, self.port)]

    def start(self):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        failed = []
        self.thread = threading.Thread(target=self._run, args=(ready, failed), daemon=True)
        self.thread.start()
        ready.wait()
        if failed:
            self.thread.join()
            raise failed[0]
        return self

    def _run(self, ready, failed):
        asyncio.set_event_loop(self.loop)
        try:
            self._clients, _ = self.loop.run_until_complete(
                self.loop.create_datagram_endpoint(lambda: _Datagrams(self._from_client), sock=self.sock)
            )
            self._upstream, _ = self.loop.run_until_complete(
                self.loop.create_datagram_endpoint(
                    lambda: _Datagrams(self._from_upstream), local_addr=(LOOPBACK, 0), remote_addr=self.upstream
                )
            )
        except OSError as exc:
            failed.append(exc)
            ready.set()
            return
        ready.set()
        self.loop.run_forever()
        for _client, _ident, timer in self._pending.values():
            timer.cancel()
        self._pending.clear()
        self._upstream.close()
        self._clients.close()
        self.loop.run_until_complete(asyncio.sleep(0))  # let the transports close
        self.loop.close()

    def _from_client(self, data, client):
        if len(data) < 12:
            return
        self.received += 1
        self.outstanding += 1
        self.max_outstanding = max(self.max_outstanding, self.outstanding)
        self.loop.call_later(self.latency, self._forward, data, client)

    def _forward(self, data, client):
        ident = self._next_id
        while ident in self._pending:  # 65536 queries in flight would be a bug in the caller
            ident = (ident + 1) & 0xFFFF
        self._next_id = (ident + 1) & 0xFFFF
        timer = self.loop.call_later(self.UPSTREAM_TIMEOUT, self._expire, ident)
        self._pending[ident] = (client, data[:2], timer)
        self._upstream.sendto(struct.pack("!H", ident) + data[2:])

    def _expire(self, ident):
        if self._pending.pop(ident, None) is not None:
            self.outstanding -= 1

    def _from_upstream(self, data, _server):
        if len(data) < 12:
            return
        entry = self._pending.pop(struct.unpack("!H", data[:2])[0], None)
        if entry is None:  # expired, or not ours
            return
        client, ident, timer = entry
        timer.cancel()
        # Counted as answered before the answer leaves: the client's next query can never meet a stale count.
        self.outstanding -= 1
        self._clients.sendto(ident + data[2:], client)

    def stop(self):
        if self.thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            self.thread = None
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, received):
        self.received = received

    def datagram_received(self, data, addr):
        self.received(data, addr)

    def error_received(self, exc):  # an ICMP error (the server went away): the query is left to expire
        pass
