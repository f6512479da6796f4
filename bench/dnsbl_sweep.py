"""The DNSBL sweep's DNS fan-out: 256 IPs x 8 lists through one AsyncDnsRun against a loopback NSD behind a
LatencyProxy adding 50 ms per query; wall time against the floor ceil(queries / concurrency) x latency.

Run by hand from the project root (needs /usr/sbin/nsd, Debian's nsd):

    .venv/bin/python bench/dnsbl_sweep.py [--ips 256] [--lists 8] [--latency 0.05] [--concurrency 50]

It serves 8 list zones (each with its RFC 5782 test point and every 16th IP listed), asks each list's test points
and every IP through one AsyncDnsRun (what deliverability.dnsbl.dnsbl_sweep sends; the database part of the sweep is
not timed), interprets each answer with records.dnsbl.verdict, and prints wall time, queries, the most in flight at
once, the ratio to the floor (goal: within 1.5x), the load average, and the CPU time spent by the resolver's process
and by the proxy (a child process of its own, so that it is not what is measured). The floor counts no CPU, and the
resolver's is all in the sweep's one event loop: dnspython's resolve() for each question, the messages sent and read
through one UDP socket per server (deliverability.dns.resolver.UdpChannel). The figures move with the machine's
load: compare runs made side by side (bench/README.md has some). Prints figures and asserts nothing.

With `--compare-pydnsbl PYTHON` the same sweep (names, zones, concurrency, proxy) also runs with pydnsbl in that
interpreter, a throwaway virtualenv outside the project (pydnsbl is not a Dockspace dependency):

    python3 -m venv /tmp/pydnsbl-venv && /tmp/pydnsbl-venv/bin/pip install pydnsbl
    .venv/bin/python bench/dnsbl_sweep.py --compare-pydnsbl /tmp/pydnsbl-venv/bin/python

pydnsbl counts every answer as listed (its issue #27); the zones here answer only 127.0.0.2, so the counts match.
"""

import argparse
import asyncio
import ipaddress
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run in the --compare-pydnsbl interpreter; reads {"port", "ips", "zones", "concurrency", "timeout"} as JSON on
# stdin and prints its figures as one JSON line.
PYDNSBL_SCRIPT = """
import asyncio, json, sys, time
import aiodns, pydnsbl
from pydnsbl.providers import Provider

job = json.load(sys.stdin)
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
checker = pydnsbl.DNSBLIpChecker(
    providers=[Provider(zone) for zone in job["zones"]], timeout=job["timeout"], concurrency=job["concurrency"],
    loop=loop,
)
checker._resolver = aiodns.DNSResolver(
    nameservers=["127.0.0.1"], udp_port=job["port"], tcp_port=job["port"], timeout=job["timeout"], tries=2,
    loop=loop,
)
started, cpu_started = time.perf_counter(), time.process_time()
results = checker.bulk_check(job["ips"])
wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
print(json.dumps({
    "wall": wall,
    "cpu": cpu,
    "lookups": sum(len(r.providers) for r in results),
    "listed": sum(len(r.detected_by) for r in results),
    "failed": sum(len(r.failed_providers) for r in results),
    "version": getattr(pydnsbl, "__version__", "?"),
}))
"""


class ProxyProcess:
    """deliverability.tests.dns_server.LatencyProxy in a child process of its own: its CPU is not counted as this
    process's and its timers never wait for this process's GIL, so the figures are the resolver's and the proxy
    stands for the network. `stats()` asks the child for its counts."""

    def __init__(self, upstream_port, latency):
        self.upstream_port, self.latency = upstream_port, latency
        self.process = self.conn = None
        self.port = None

    @property
    def nameservers(self):
        return [("127.0.0.1", self.port)]

    def __enter__(self):
        self.conn, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(
            target=_serve_proxy, args=(child, self.upstream_port, self.latency), daemon=True
        )
        self.process.start()
        self.port = self.conn.recv()
        return self

    def stats(self, reset=False):
        """(queries received, most in flight at once, the child's CPU seconds); `reset`: then count the most in
        flight afresh."""
        self.conn.send("reset" if reset else "stats")
        return self.conn.recv()

    def __exit__(self, *exc):
        self.conn.send("stop")
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def _serve_proxy(conn, upstream_port, latency):
    from deliverability.tests.dns_server import LatencyProxy

    with LatencyProxy(upstream_port, latency) as proxy:
        conn.send(proxy.port)
        while (command := conn.recv()) != "stop":
            conn.send((proxy.received, proxy.max_outstanding, time.process_time()))
            if command == "reset":
                proxy.max_outstanding = 0
    conn.close()


def compare_pydnsbl(python, proxy, ips, zones, args, floor):
    """Sweeps the same names with pydnsbl in `python` through `proxy` and prints its figures."""
    job = {"port": proxy.port, "ips": ips, "zones": zones, "concurrency": args.concurrency, "timeout": 10}
    received, _, proxy_cpu_started = proxy.stats(reset=True)
    try:
        done = subprocess.run(
            [python, "-c", PYDNSBL_SCRIPT], input=json.dumps(job), capture_output=True, text=True, timeout=300
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"--compare-pydnsbl: cannot run {python}: {exc}", file=sys.stderr)
        return 1
    received_after, most, proxy_cpu = proxy.stats()
    if done.returncode != 0:
        print(f"pydnsbl run failed ({python}, exit {done.returncode}):\n{done.stderr.strip()}", file=sys.stderr)
        return 1
    got = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"pydnsbl ({python}):")
    print(
        f"  lookups: {got['lookups']}; queries the proxy received: {received_after - received}; "
        f"most in flight at once: {most} (limit {args.concurrency})"
    )
    print(f"  listed answers: {got['listed']}; failed: {got['failed']}")
    print(f"  wall time: {got['wall']:.3f} s; ratio to the floor {got['wall'] / floor:.2f}")
    print(f"  CPU: {got['cpu']:.3f} s in pydnsbl's process, {proxy_cpu - proxy_cpu_started:.3f} s in the proxy's")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ips", type=int, default=256)
    parser.add_argument("--lists", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--compare-pydnsbl",
        metavar="PYTHON",
        help="then sweep the same names with pydnsbl run by this interpreter (a venv outside the project)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockspace.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
    from deliverability.dns.resolver import AsyncDnsRun, dnsbl_query_name
    from deliverability.records.dnsbl import IP_TEST_POINTS, LISTED, verdict
    from deliverability.tests.dns_server import DnsServer, require_nsd

    require_nsd()
    status = 0
    temp = Path(tempfile.mkdtemp(prefix="dockspace-bench-dnsbl-"))
    ips = [
        str(ipaddress.ip_address("198.51.100.0") + i) if i < 256 else str(ipaddress.ip_address("10.0.0.0") + i)
        for i in range(args.ips)
    ]
    zones = [f"list{n}.bench.test" for n in range(args.lists)]
    try:
        server = DnsServer(temp / "nsd")
        for zone in zones:
            listed = [f"{'.'.join(reversed(ip.split('.')))} A 127.0.0.2" for ip in ips[::16]]
            server.zone(zone, ["2.0.0.127 A 127.0.0.2", *listed])
        server.start()
        with ProxyProcess(server.port, args.latency) as proxy:
            run = AsyncDnsRun(nameservers=proxy.nameservers, timeout=10, concurrency=args.concurrency)
            questions = [(dnsbl_query_name(p, z), "A") for z in zones for p in IP_TEST_POINTS]
            questions += [(dnsbl_query_name(ip, z), "A") for z in zones for ip in ips]
            _, _, proxy_cpu_started = proxy.stats()
            print(f"load average: {' '.join(f'{load:.2f}' for load in os.getloadavg())} ({os.cpu_count()} CPUs)")
            started, cpu_started = time.perf_counter(), time.process_time()
            answers = asyncio.run(run.lookup_many(questions))
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            _, most, proxy_cpu = proxy.stats()
            listed = sum(verdict(a, {"127.0.0.2": "listed"}).status == LISTED for a in answers)
            floor = math.ceil(len(questions) / args.concurrency) * args.latency
            print(f"questions: {len(questions)} ({args.ips} IPs x {args.lists} lists + test points)")
            print(f"queries sent: {run.queries_sent}; most in flight at once: {most} (limit {args.concurrency})")
            print(f"listed answers: {listed}; failed: {sum(a.is_failure for a in answers)}")
            print(
                f"wall time: {wall:.3f} s; floor ceil({len(questions)}/{args.concurrency}) x "
                f"{args.latency * 1000:g} ms = {floor:.3f} s; ratio {wall / floor:.2f} (goal <= 1.5)"
            )
            print(
                f"CPU: {cpu:.3f} s in this process, the resolver ({cpu / len(questions) * 1000:.2f} ms a question); "
                f"{proxy_cpu - proxy_cpu_started:.3f} s in the proxy's"
            )
            if args.compare_pydnsbl:
                status = compare_pydnsbl(args.compare_pydnsbl, proxy, [*IP_TEST_POINTS, *ips], zones, args, floor)
        server.stop()
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
