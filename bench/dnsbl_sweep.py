"""The DNSBL sweep's DNS fan-out: 256 IPs x 8 lists through one AsyncDnsRun against a loopback NSD behind a
LatencyProxy adding 50 ms per query; wall time against the floor ceil(queries / concurrency) x latency.

Run by hand from the project root (needs /usr/sbin/nsd, Debian's nsd):

    .venv/bin/python bench/dnsbl_sweep.py [--ips 256] [--lists 8] [--latency 0.05] [--concurrency 50]

It serves 8 list zones (each with its RFC 5782 test point and every 16th IP listed), asks each list's test points
and every IP through one AsyncDnsRun (what deliverability.dnsbl.dnsbl_sweep sends; the database part of the sweep is
not timed), interprets each answer with records.dnsbl.verdict, and prints wall time, queries, the most in flight at
once, the ratio to the floor (goal: within 1.5x) and the CPU time the process spent (the floor counts none: dnspython
builds and parses each message in the sweep's one event loop; the proxy runs in the same process, on one asyncio loop
of its own). The figures move with the machine's load: compare runs made side by side. Prints figures and asserts
nothing. pydnsbl is not installed and is not compared (it counts every answer as listed, its issue #27).
"""

import argparse
import asyncio
import ipaddress
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ips", type=int, default=256)
    parser.add_argument("--lists", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockspace.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
    from deliverability.dns.resolver import AsyncDnsRun, dnsbl_query_name
    from deliverability.records.dnsbl import IP_TEST_POINTS, LISTED, verdict
    from deliverability.tests.dns_server import DnsServer, LatencyProxy, require_nsd

    require_nsd()
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
        with LatencyProxy(server.port, args.latency) as proxy:
            run = AsyncDnsRun(nameservers=proxy.nameservers, timeout=10, concurrency=args.concurrency)
            questions = [(dnsbl_query_name(p, z), "A") for z in zones for p in IP_TEST_POINTS]
            questions += [(dnsbl_query_name(ip, z), "A") for z in zones for ip in ips]
            started, cpu_started = time.perf_counter(), time.process_time()
            answers = asyncio.run(run.lookup_many(questions))
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            most = proxy.max_outstanding
        server.stop()
        listed = sum(verdict(a, {"127.0.0.2": "listed"}).status == LISTED for a in answers)
        floor = math.ceil(len(questions) / args.concurrency) * args.latency
        print(f"questions: {len(questions)} ({args.ips} IPs x {args.lists} lists + test points)")
        print(f"queries sent: {run.queries_sent}; most in flight at once: {most} (limit {args.concurrency})")
        print(f"listed answers: {listed}; failed: {sum(a.is_failure for a in answers)}")
        print(
            f"wall time: {wall:.3f} s; floor ceil({len(questions)}/{args.concurrency}) x {args.latency * 1000:g} ms "
            f"= {floor:.3f} s; ratio {wall / floor:.2f} (goal <= 1.5)"
        )
        print(f"CPU in this process: {cpu:.3f} s ({cpu / len(questions) * 1000:.2f} ms a question, resolver and proxy)")
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
