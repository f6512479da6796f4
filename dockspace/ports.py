"""The address `make run` listens on: parsing DOCKSPACE_BIND, whether it is loopback only, and whether
(and by whom) its port is already taken, so the supervisor can refuse before starting anything."""

import errno
import ipaddress
import os
import socket
from pathlib import Path

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
TCP_LISTEN = "0A"


def parse_bind(bind, setting="DOCKSPACE_BIND"):
    """'127.0.0.1:8000', '[::1]:8000', '0.0.0.0:8000' or ':8000' -> (host, port); ValueError naming SETTING and the
    rule."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{setting} must be HOST:PORT such as 127.0.0.1:8000; got {bind!r}.")
    host = host.strip("[]")
    return host, int(port)


def local_url(bind):
    """The http address a browser on this machine opens for a server listening on BIND (every interface:
    127.0.0.1). `make run` and every manage.py command given the same DOCKSPACE_BIND agree on it."""
    host, port = parse_bind(bind)
    reachable = "127.0.0.1" if host in ("0.0.0.0", "", "::") else bind.rpartition(":")[0]  # noqa: S104
    return f"http://{reachable}:{port}"


def is_loopback(host):
    """True when only this machine can reach HOST (an empty host means every interface)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_problem(host, port):
    """None when HOST:PORT can be listened on now, else (is_in_use, reason).

    SO_REUSEADDR as gunicorn sets it: a port left in TIME_WAIT by a stopped server is not "in use"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))  # noqa: S104 - a probe
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE, exc.strerror or str(exc)
    return None


def _listening_inodes(port, proc=Path("/proc")):
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def port_holders(port, proc=Path("/proc")):
    """[(pid, command line)] of the processes listening on PORT that this user may inspect (Linux /proc)."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue  # another user's process, or it just ended
        for fd in fds:
            try:
                if os.readlink(fd) in wanted:
                    cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    holders.append((int(entry.name), cmdline or "?"))
                    break
            except OSError:
                continue
    return sorted(holders)


def describe_port_holders(port):
    holders = port_holders(port)
    if not holders:
        return "by a process this user cannot see (run `ss -ltnp` as root to find it)"
    pid, cmd = holders[0]
    more = f" and {len(holders) - 1} more process(es)" if len(holders) > 1 else ""
    return f"by pid {pid} ({cmd[:100]}){more}"


def _parent_pid(pid, proc=Path("/proc")):
    try:
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
        return int((proc / str(pid) / "stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid, proc=Path("/proc")):
    try:
        return (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def dockspace_server_pid(port, proc=Path("/proc")):
    """When Dockspace's own web server (gunicorn serving dockspace.wsgi) listens on PORT: the pid that stops it,
    the `make run` that started it or else gunicorn's master. None when anything else holds the port."""
    servers = {pid for pid, cmd in port_holders(port, proc) if "gunicorn" in cmd and "dockspace.wsgi" in cmd}
    # gunicorn's workers share the master's socket; the master is the one whose parent is not a holder.
    masters = sorted(pid for pid in servers if _parent_pid(pid, proc) not in servers)
    if not masters:
        return None
    parent = _parent_pid(masters[0], proc)
    return parent if parent and "dockspace.devserver" in _cmdline(parent, proc) else masters[0]
