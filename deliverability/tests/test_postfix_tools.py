"""The rendered files applied the way DMS applies them, checked with the real Postfix tools: postfix-main.cf appended
to a copy of main.cf and normalised with `postconf -n`, user-patches.sh run with bash against the copy (twice: a
restarted container keeps its master.cf), then `postconf -M` lists the transports, `postconf -n` the maps, and
`postmap -q` answers each pooled domain with its pool's transports."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from deliverability.postfix_transports import PoolIp, PoolRoute, main_lines, map_lines, user_patches_lines
from mail.dms.catalog import HEADER

pytestmark = pytest.mark.skipif(
    not (shutil.which("postconf") and shutil.which("postmap") and Path("/etc/postfix/master.cf").exists()),
    reason="needs Postfix (postconf, postmap and /etc/postfix)",
)

A = PoolIp("192.0.2.10", "out1.example.com", 1)
B = PoolIp("192.0.2.11", "out2.example.com", 3)
V6 = PoolIp("2001:db8::1", "out6.example.com", 1)


def _run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60, **kw)


@pytest.fixture
def postfix_dir(tmp_path):
    """A Postfix config directory as DMS has it before start-up: the packaged main.cf and master.cf."""
    conf = tmp_path / "postfix"
    conf.mkdir()
    for name in ("main.cf", "master.cf"):
        shutil.copy(f"/etc/postfix/{name}", conf / name)
    return conf


def _apply(conf: Path, dms: Path, routes):
    """Write the three files into `dms` and apply them as DMS's start-up does; returns the stderr of every step."""
    map_path = dms / "postfix-sender-pools.cf"
    dms.mkdir(exist_ok=True)
    map_path.write_text(HEADER + "".join(f"{line}\n" for line in map_lines(routes)))
    (dms / "postfix-main.cf").write_text(
        HEADER + "".join(f"{line}\n" for line in main_lines(routes, map_path=str(map_path)))
    )
    (dms / "user-patches.sh").write_text(HEADER + "".join(f"{line}\n" for line in user_patches_lines(routes)))
    # target/scripts/startup/setup.d/postfix.sh: cat postfix-main.cf >> main.cf; postconf -n > new; mv new main.cf
    with (conf / "main.cf").open("a") as main:
        main.write((dms / "postfix-main.cf").read_text())
    normalised = _run(["postconf", "-c", str(conf), "-n"])
    (conf / "main.cf").write_text(normalised.stdout)
    # target/scripts/startup/setup-stack.sh: /bin/bash /tmp/docker-mailserver/user-patches.sh
    patched = _run(
        ["bash", str(dms / "user-patches.sh")],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DOCKSPACE_POSTFIX_DIR": str(conf)},
    )
    # DMS drops the "overriding earlier entry" warnings of that step (a restarted container's main.cf has the line).
    kept = [line for line in normalised.stderr.splitlines(True) if "overriding earlier entry" not in line]
    return "".join(kept) + patched.stderr


def _services(conf: Path) -> dict[str, str]:
    listed = _run(["postconf", "-c", str(conf), "-M"])
    assert "warning" not in listed.stderr
    return {line.split()[0]: line for line in listed.stdout.splitlines() if line.startswith("out-")}


def _service_parameter(conf: Path, service: str, name: str) -> str:
    """A `-o name=value` of a master.cf service as Postfix reads it."""
    result = _run(["postconf", "-c", str(conf), "-P", f"{service}/unix/{name}"])
    assert "warning" not in result.stderr, result.stderr
    return result.stdout.strip().partition(" = ")[2]


def _tables(conf: Path) -> list[str]:
    """sender_dependent_default_transport_maps split into its tables (commas outside braces separate them)."""
    value = _run(["postconf", "-c", str(conf), "-h", "sender_dependent_default_transport_maps"]).stdout.strip()
    tables, depth, current = [], 0, ""
    for char in value:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char in ", " and depth == 0:
            tables, current = ([*tables, current] if current else tables), ""
            continue
        current += char
    return [*tables, current] if current else tables


def _transport(conf: Path, sender_domain: str) -> set[str]:
    """What Postfix's lookup of `@domain` gives, as trivial-rewrite searches the tables (first match wins), over
    enough lookups to see every member of a randmap."""
    for table in _tables(conf):
        seen = set()
        for _ in range(60):
            result = subprocess.run(
                ["postmap", "-c", str(conf), "-q", f"@{sender_domain}", table],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert "warning" not in result.stderr and "fatal" not in result.stderr, result.stderr
            if result.returncode != 0:
                break
            seen.add(result.stdout.strip())
        if seen:
            return seen
    return set()


def test_dms_start_up_creates_one_transport_per_ip_and_routes_each_pool_through_them(postfix_dir, tmp_path):
    routes = [
        PoolRoute("bulk", ("a.example", "b.example"), (A, B)),
        PoolRoute("solo", ("c.example",), (V6,)),
        PoolRoute("empty", ("d.example",), ()),
    ]
    stderr = _apply(postfix_dir, tmp_path / "dms", routes)

    assert "unmatched" not in stderr and "warning" not in stderr and "error" not in stderr.lower(), stderr
    services = _services(postfix_dir)
    assert set(services) == {"out-192-0-2-10", "out-192-0-2-11", "out-2001-db8--1"}
    assert re.fullmatch(
        r"out-192-0-2-11 +unix +- +- +n +- +- +smtp -o syslog_name=postfix/out-192-0-2-11 -o inet_protocols=ipv4 "
        r"-o smtp_bind_address=192\.0\.2\.11 -o smtp_helo_name=out2\.example\.com",
        services["out-192-0-2-11"],
    )
    assert "-o smtp_bind_address6=2001:db8::1 -o smtp_helo_name=out6.example.com" in services["out-2001-db8--1"]
    # Each transport logs under its own name (postfix/out-192-0-2-10/smtp[pid]), as Postfix reads the entry.
    for name in services:
        assert _service_parameter(postfix_dir, name, "syslog_name") == f"postfix/{name}"
    # A bind address holds for its own family only: IPv4 transports are pinned, IPv6 ones prefer IPv6.
    assert _service_parameter(postfix_dir, "out-192-0-2-11", "inet_protocols") == "ipv4"
    assert _service_parameter(postfix_dir, "out-2001-db8--1", "smtp_address_preference") == "ipv6"
    settings = _run(["postconf", "-c", str(postfix_dir), "-n"]).stdout
    assert "sender_dependent_default_transport_maps = pipemap:" in settings
    assert _transport(postfix_dir, "a.example") == {"out-192-0-2-10", "out-192-0-2-11"}
    assert _transport(postfix_dir, "c.example") == {"out-2001-db8--1"}
    assert _transport(postfix_dir, "d.example") == set()  # a pool with no IP in rotation: default transport
    assert _transport(postfix_dir, "unpooled.example") == set()
    # The map itself, as Postfix reads it.
    map_file = f"texthash:{tmp_path / 'dms' / 'postfix-sender-pools.cf'}"
    assert _run(["postmap", "-c", str(postfix_dir), "-q", "@b.example", map_file]).stdout.strip() == "bulk"


def test_a_restart_after_an_ip_left_rotation_drops_its_transport_and_keeps_the_others(postfix_dir, tmp_path):
    _apply(postfix_dir, tmp_path / "dms", [PoolRoute("bulk", ("a.example",), (A, B, V6))])
    assert set(_services(postfix_dir)) == {"out-192-0-2-10", "out-192-0-2-11", "out-2001-db8--1"}

    # The same container started again (its master.cf and main.cf kept), B moved to RESTING meanwhile.
    stderr = _apply(postfix_dir, tmp_path / "dms", [PoolRoute("bulk", ("a.example",), (A, V6))])

    assert "warning" not in stderr, stderr
    assert set(_services(postfix_dir)) == {"out-192-0-2-10", "out-2001-db8--1"}
    assert _transport(postfix_dir, "a.example") == {"out-192-0-2-10", "out-2001-db8--1"}
    master = (postfix_dir / "master.cf").read_text()
    assert master.count("# BEGIN Dockspace transports") == 1 and master.count("# END Dockspace transports") == 1
    # The packaged services are untouched.
    assert re.search(r"^smtp +unix .*smtp$", master, re.MULTILINE)

    # Every pool gone: no transport, and the parameter is reset.
    _apply(postfix_dir, tmp_path / "dms", [])
    assert _services(postfix_dir) == {}
    assert _tables(postfix_dir) == []


def test_postfix_master_cf_cannot_add_a_transport(postfix_dir):
    """Why the transports come from user-patches.sh: DMS applies postfix-master.cf with `postconf -P`, which only
    edits existing services."""
    result = _run(["postconf", "-c", str(postfix_dir), "-P", "out-192-0-2-10/unix/smtp_helo_name=out1.example.com"])
    assert "unmatched service_name/type" in result.stderr
    assert _services(postfix_dir) == {}
