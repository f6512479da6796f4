"""DNS servers on loopback for the resolver's tests and the DNS benchmark: a real authoritative NSD serving zone files
a test writes (`DnsServer`), a server that reads queries and never answers (`SilentDnsServer`), and a UDP forwarder
that holds each query N seconds and counts how many are in flight at once (`LatencyProxy`).

Use the pytest fixtures (`dns_server`, `silent_dns_server` in deliverability/tests/conftest.py), or the classes
directly. Needs /usr/sbin/nsd and nsd-checkzone (Debian: nsd); tests skip without them. Raw DNS packets here are
built by hand: dnspython is the resolver module's alone (pyproject's import-linter contract "dns").
"""

import contextlib
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

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
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((LOOPBACK, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port


def query_packet(name, qtype, ident=0x5151):
    """A DNS query (no recursion asked) for NAME and the numeric type QTYPE."""
    labels = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.strip(".").split(".") if label)
    return struct.pack("!HHHHHH", ident, 0, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def response_code(packet):
    return packet[3] & 0x0F


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


class LatencyProxy(_UdpListener):
    """Forwards each UDP query to 127.0.0.1:`upstream_port` after `latency` seconds and relays the answer back
    (UDP only: a truncated answer's TCP retry is not proxied). Counts the queries `received` and the most that
    were ever `outstanding` at once (received, not yet answered)."""

    def __init__(self, upstream_port, latency):
        super().__init__()
        self.upstream = (LOOPBACK, upstream_port)
        self.latency = latency
        self.outstanding = 0
        self.max_outstanding = 0
        self.workers = []

    def handle(self, data, client):
        with self.lock:
            self.outstanding += 1
            self.max_outstanding = max(self.max_outstanding, self.outstanding)
        worker = threading.Thread(target=self._forward, args=(data, client), daemon=True)
        self.workers.append(worker)
        worker.start()

    def _forward(self, data, client):
        reply = None
        if not self.stopping.wait(self.latency):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
                upstream.settimeout(5)
                try:
                    upstream.sendto(data, self.upstream)
                    reply = upstream.recv(65535)
                except OSError:  # no answer upstream: the client times out, as it would
                    reply = None
        # Counted as answered before the answer leaves: the client's next query can never meet a stale count.
        with self.lock:
            self.outstanding -= 1
        if reply is not None:
            with contextlib.suppress(OSError):  # the proxy is stopping
                self.sock.sendto(reply, client)

    def finish(self):
        for worker in self.workers:
            worker.join()
