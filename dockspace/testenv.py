"""Pytest plugin loaded before Django starts (`-p dockspace.testenv`): test-run environment defaults.

Tests run with production-like settings (DEBUG off, secure cookies) in a throwaway data directory.
Variables already set (CI's DATABASE_URL and REDIS_URL) are kept.
"""

import os
import secrets
import tempfile

_data_dir = tempfile.mkdtemp(prefix="dockspace-test-")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("DOCKSPACE_URL", "https://dockspace.test")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1,dockspace.test")
os.environ["DOCKSPACE_DATA_DIR"] = _data_dir
os.environ.setdefault("DOCKSPACE_TEST_APPS", "dockspace.tests.extension_app")
# People's passwords are hashed at Argon2id's cheapest cost: the real one (7 MiB, 5 passes) is 14 ms of CPU per hash
# and the suite, with the processes it starts, hashes thousands. accounts/tests/test_hashers.py checks the real
# default in a process without these, and the cost rules on values of its own.
os.environ.setdefault("DOCKSPACE_ARGON2_MEMORY_KIB", "8")
os.environ.setdefault("DOCKSPACE_ARGON2_TIME_COST", "1")


def _refusing_dns_server():
    """A UDP port on loopback answering every DNS query REFUSED at once: the resolver tests use by default, so a
    test never asks the network's DNS (nor waits for a timeout). A test about DNS starts its own server
    (deliverability/tests/dns_server.py) and points settings.DNS_NAMESERVERS at it."""
    import socket
    import threading

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                data, client = sock.recvfrom(4096)
                end = 12
                while end < len(data) and data[end]:
                    end += data[end] + 1
                question = data[12 : end + 5]
                flags = bytes([0x80 | (data[2] & 0x79), 0x05])  # QR, the opcode and RD kept; REFUSED
                sock.sendto(data[:2] + flags + b"\x00\x01" + b"\x00" * 6 + question, client)
            except (OSError, IndexError):
                continue

    threading.Thread(target=serve, daemon=True, name="refusing-dns").start()
    return sock.getsockname()[1]


os.environ["DOCKSPACE_DNS_RESOLVER"] = f"127.0.0.1:{_refusing_dns_server()}"
