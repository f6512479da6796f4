"""Ports for the servers the tests start on loopback (Postfix, Dovecot, sshd, nsd, gunicorn, the policy service).

A port is taken below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by default), not
from it: a port found free and handed to a daemon that binds it a moment later could meanwhile become the source
port of one of the many client connections this suite (and CI's other pass beside it) opens, and the daemon then
fails with "Address already in use"."""

import random
import socket
from pathlib import Path

_pick = random.SystemRandom()  # not the `random` a test may seed: both CI passes would draw the same ports
_LOWEST = 20000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1", *, udp: bool = False) -> int:
    """A port nothing is bound to on `host` (for TCP, and UDP too with `udp`), below the ephemeral range."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)
    highest = _ephemeral_start() - 1
    for _ in range(1000):
        port = _pick.randint(_LOWEST, highest) if highest > _LOWEST + 1000 else 0
        try:
            for kind in kinds:
                with socket.socket(family, kind) as probe:
                    probe.bind((host, port))
                    port = probe.getsockname()[1]
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port on {host} between {_LOWEST} and {highest}")
