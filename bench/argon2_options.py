"""The CPU of one password check for each of OWASP's equivalent Argon2id options, on this machine.

Run by hand from the project root:

    .venv/bin/python bench/argon2_options.py [--rounds 40]

OWASP's Password Storage Cheat Sheet lists five Argon2id settings it holds equally strong (they trade memory for
passes): 46 MiB/1, 19 MiB/2, 12 MiB/3, 9 MiB/4 and 7 MiB/5, all with one lane. This script hashes a password with
each, verifies it `--rounds` times in this thread and prints the median and the 90th percentile of the thread CPU
time of one check, and which option the running settings (DOCKSPACE_ARGON2_*) select. Dockspace's default is the
cheapest option measured here. It needs no database and asserts nothing.
"""

import argparse
import os
import statistics
import sys
import time

from argon2 import PasswordHasher

OWASP_OPTIONS = [(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5)]  # (memory KiB, passes), 1 lane


def check_cpu_ms(memory_kib, passes, rounds):
    hasher = PasswordHasher(time_cost=passes, memory_cost=memory_kib, parallelism=1)
    encoded = hasher.hash("a bench password of ordinary length")
    timings = []
    for _ in range(rounds):
        started = time.thread_time()
        hasher.verify(encoded, "a bench password of ordinary length")
        timings.append((time.thread_time() - started) * 1000)
    timings.sort()
    return statistics.median(timings), timings[int(0.9 * (len(timings) - 1))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be positive.")
    configured = (
        int(os.environ.get("DOCKSPACE_ARGON2_MEMORY_KIB", 7168)),
        int(os.environ.get("DOCKSPACE_ARGON2_TIME_COST", 5)),
    )
    print(f"One Argon2id check (1 lane), thread CPU time over {args.rounds} checks, CPUs {os.cpu_count()}")
    print("  memory    passes   median ms   p90 ms")
    for memory_kib, passes in OWASP_OPTIONS:
        median, p90 = check_cpu_ms(memory_kib, passes, args.rounds)
        mark = "  <- configured" if (memory_kib, passes) == configured else ""
        print(f"  {memory_kib // 1024:>3} MiB   {passes:>6}   {median:>9.1f}   {p90:>6.1f}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
