"""Postfix policy service: requests/s and p50/p99/max latency at 1, 8 and 32 Postfix-like connections for
`manage.py policy_server`, side by side with policyd-rate-limit (PyPI) enforcing the same per-SASL-user daily limit
and a trivial DUNNO server (the client's ceiling); then the policy server's memory with 100k people configured.

Run by hand from the project root:

    .venv/bin/python bench/policy_service.py [--seconds 10] [--connections 1,8,32] [--people 1000]
        [--postgres] [--policyd-db file,memory] [--memory-people 100000] [--keep-temp]

Setup: a new SQLite database in a temporary directory (--postgres: the database `dockspace_bench_policy` plus
$BENCH_DB_SUFFIX on 127.0.0.1:5432, user `postgres`, dropped afterwards), migrated, then --people people with an
active mailbox each on 4 domains of one tier whose daily_send_limit is --limit (default 500), written with
bulk_create. policyd-rate-limit 1.2.0 lives in its own venv outside the repository (--policyd-venv, default
/work/policyd-venv, else ~/.cache/dockspace-bench/policyd-venv), created with a pinned `pip install` when missing;
it runs its own daemon loop (Policyd().run(), what its `policyd-rate-limit` script calls, minus the root-only
privilege drop) with `limits: [[LIMIT, 86400]]`, `limit_by_sasl: True`, `count_mode: 1` (it counts recipients at
DATA, as its README asks) and its SQLite backend: `file` is its default (a database file, one commit per counted
message: durable like our embedded counters must be), `memory` is the same backend on `:memory:` (fastest it can be,
counts lost on restart). Each runs on its own loopback port.

The client is Postfix-like: every connection is its own process (as every smtpd process holds its own connection to
the policy service), reused for every message; per message it sends the requests of the protocol states the server
is placed at (ours: RCPT then END-OF-MESSAGE; policyd-rate-limit: DATA, where its README places it; --our-states and
--policyd-states change that) with the attributes Postfix 3.7 sends, and stops a message at the first refusal (as
Postfix would). 5 % of the messages (--heavy-share) come from --heavy people who were brought to the limit before
the timed phases (untimed), so every server refuses the same share: the answers column shows that each enforces
the limit. The rest come from all the other people, at random.

Figures per server and connection count: requests and requests/s, messages/s, p50/p99/max latency of one request
(send to the end of the answer, on the client), the server's and the client's CPU time per request, and the
answers (action word, with the status code of a numeric action). The DUNNO server answers every request at once:
its line is the ceiling of the client on this machine. Client and servers share the machine's CPUs: compare runs
on the same, otherwise idle machine. Then memory: VmRSS of `policy_server` after it answered one request, with
--people and with --memory-people people (a second database), beside policyd-rate-limit's.

When `manage.py policy_server` does not exist yet, only policyd-rate-limit and the DUNNO server are measured.
"""

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import re
import resource
import socket
import subprocess
import sys
import time
from array import array
from collections import Counter
from pathlib import Path

import harness

POLICYD_VERSION = "1.2.0"
POLICYD_VENVS = (Path("/work/policyd-venv"), Path.home() / ".cache" / "dockspace-bench" / "policyd-venv")
DOMAINS = 4
MARK = "BENCH-RESULT "
SOCKET_TIMEOUT = 10  # seconds; an answer slower than this counts as a failure
REFUSAL = re.compile(r"^(?:[45]\d\d\b|REJECT\b|DEFER\b|DEFER_IF_PERMIT\b|DEFER_IF_REJECT\b)", re.IGNORECASE)


def domain_name(n):
    return f"d{n}.policy.bench.test"


def address(i):
    return f"user{i:06d}@{domain_name(i % DOMAINS)}"


# --- the people ------------------------------------------------------------------------------------

# Run in `manage.py shell -c`: one tier with the daily limit, the domains on it, `people` people with an active
# mailbox each. bulk_create sends no signals: nothing else is queued. Nobody signs in: one unusable password.
SETUP_CODE = r"""
import json, os, time
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from mail.models import Domain, Mailbox, Tier

spec = json.loads(open(os.environ["BENCH_SPEC"]).read())
User = get_user_model()
began = time.perf_counter()
now = timezone.now()
CHUNK = 5000
with transaction.atomic():
    tier = Tier.objects.create(name="bench-policy", daily_send_limit=spec["limit"])
    domains = Domain.objects.bulk_create(
        [Domain(name=f"d{n}.policy.bench.test", tier=tier) for n in range(spec["domains"])]
    )
    for lo in range(0, spec["people"], CHUNK):
        block = range(lo, min(lo + CHUNK, spec["people"]))
        people = User.objects.bulk_create(
            [
                User(
                    email=f"user{i:06d}@{domains[i % len(domains)].name}",
                    password="!bench-no-sign-in",
                    full_name=f"Bench Person {i}",
                    email_verified_at=now,
                )
                for i in block
            ]
        )
        Mailbox.objects.bulk_create(
            [
                Mailbox(
                    person_id=person.pk,
                    domain_id=domains[i % len(domains)].pk,
                    local_part=f"user{i:06d}",
                    address=f"user{i:06d}@{domains[i % len(domains)].name}",
                    state=Mailbox.ACTIVE,
                )
                for i, person in zip(block, people)
            ]
        )
print("BENCH-RESULT " + json.dumps({"seconds": time.perf_counter() - began, "mailboxes": Mailbox.objects.count()}))
"""


def create_people(env, temp_dir, people, limit, name):
    spec_path = temp_dir / f"{name}-spec.json"
    spec_path.write_text(json.dumps({"people": people, "limit": limit, "domains": DOMAINS}))
    result = harness.run_shell(env, SETUP_CODE, spec_path, MARK.strip())
    print(f"  {result['mailboxes']:,} people with a mailbox in {result['seconds']:.1f} s", flush=True)


class Database:
    """A migrated database of its own for one Dockspace (SQLite in the temporary directory, or PostgreSQL)."""

    def __init__(self, args, temp_dir, name):
        self.db_name = harness.bench_db_name(f"dockspace_bench_policy{'' if name == 'main' else '_' + name}")
        data_dir = temp_dir / f"data-{name}"
        data_dir.mkdir(mode=0o700)  # as Dockspace wants its data directory (else a warning at every start)
        values = {} if args.postgres else {"DATABASE_URL": f"sqlite:///{data_dir}/{name}.sqlite3"}
        self.env = harness.bench_env(self.db_name, data_dir, values)
        self.postgres = args.postgres

    def __enter__(self):
        if self.postgres:
            self._pg = harness.migrated_database(self.db_name, self.env)
            self._pg.__enter__()
        else:
            print("Migrating a new SQLite database ...", flush=True)
            harness.run_manage(self.env, "migrate", "--noinput", capture=True)
        return self

    def __exit__(self, *exc):
        if self.postgres:
            self._pg.__exit__(*exc)
        return False


# --- the servers -----------------------------------------------------------------------------------

DUNNO_SERVER = r"""
import asyncio, sys

class Dunno(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        answers = self.buffer.count(b"\n\n")
        if answers:
            self.buffer = self.buffer.rsplit(b"\n\n", 1)[1]
            self.transport.write(b"action=DUNNO\n\n" * answers)

async def main():
    server = await asyncio.get_running_loop().create_server(Dunno, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()

asyncio.run(main())
"""

# policyd-rate-limit's own daemon loop, as its `policyd-rate-limit` script runs it, without the part that runs only
# as root (creating /var/run directories and dropping privileges to a `policyd-rate-limit` user).
POLICYD_SERVER = r"""
import sys
from policyd_rate_limit import utils
from policyd_rate_limit.policyd import Policyd
from policyd_rate_limit.utils import config

config.setup(sys.argv[1])
utils.database_init()
policyd = Policyd()
policyd.socket()
try:
    policyd.run()
except KeyboardInterrupt:
    pass
finally:
    policyd.close_socket()
"""


def policyd_python(args):
    """The python of policyd-rate-limit's venv, created with the pinned version when missing."""
    venv = Path(args.policyd_venv) if args.policyd_venv else next((p for p in POLICYD_VENVS if p.exists()), None)
    if venv is None:
        venv = POLICYD_VENVS[0] if os.access(POLICYD_VENVS[0].parent, os.W_OK) else POLICYD_VENVS[1]
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"Creating {venv} with policyd-rate-limit=={POLICYD_VERSION} ...", flush=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([args.policyd_python, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('policyd-rate-limit'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if installed != POLICYD_VERSION:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"policyd-rate-limit=={POLICYD_VERSION}"], check=True
        )
    too_new = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version_info >= (3, 12), sys.version.split()[0])"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if too_new[0] == "True":
        raise SystemExit(
            f"{venv} runs Python {too_new[1]}: policyd-rate-limit {POLICYD_VERSION} imports "
            "`imp`, gone since Python 3.12. Remove it and give --policyd-python python3.11 (or older)."
        )
    return python


def policyd_config(path, port, database, limit):
    lines = [
        "debug: False",
        f'pidfile: "{path.with_suffix(".pid")}"',
        "backend: 0",
        f'sqlite_config: {{database: "{database}"}}',
        f'SOCKET: ["127.0.0.1", {port}]',
        f"limits: [[{limit}, 86400]]",
        "limits_by_id: {}",
        'sql_limits_by_id: ""',  # 1.2.0 reads it and has no default for it
        "limit_by_sasl: True",
        "limit_by_sender: False",
        "limit_by_ip: False",
        'success_action: "dunno"',
        'fail_action: "defer_if_permit Rate limit reach, retry later"',
        'db_error_action: "dunno"',
        "report: False",
        "delay_to_close: 300",
        "count_mode: 1",
    ]
    path.write_text("\n".join(lines) + "\n")


class Server:
    """A policy server process on a loopback port; stopped on the way out."""

    def __init__(self, label, argv, port, log_path, *, env=None, states, counts):
        self.label, self.argv, self.port, self.log_path = label, argv, port, log_path
        self.env, self.states, self.counts = env, states, counts
        self.samples = {}  # answer key -> the first full action seen

    def __enter__(self):
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.argv,
            cwd=harness.ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only this script, which stops the server itself
        )
        try:
            self.started = wait_answering(self)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return False

    def log_tail(self, lines=15):
        text = Path(self.log_path).read_text(errors="replace").splitlines()
        return "\n".join(f"    {line[:300]}" for line in text[-lines:])


PROBE = b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=127.0.0.1\n\n"


def wait_answering(server, timeout=120):
    """Seconds until the server answered one request (a probe with no SASL user, which no server counts)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if server.proc.poll() is not None:
            raise SystemExit(
                f"{server.label} exited with status {server.proc.returncode} before answering:\n{server.log_tail()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(PROBE)
                if read_answer(sock):
                    return time.monotonic() - began
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{server.label} did not answer within {timeout} s; see {server.log_path}.")


def read_answer(sock, buffer=b""):
    while not buffer.endswith(b"\n\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        buffer += chunk
    return buffer


def process_tree(pid):
    """The pid and every descendant (a server may fork workers)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(child) for child in (task / "children").read_text().split()]
    return pids


def server_cpu(server):
    return sum(harness._cpu_seconds_of(pid) for pid in process_tree(server.proc.pid))


def vm_rss_mib(pid):
    total = 0
    for one in process_tree(pid):
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


# --- the Postfix-like client -----------------------------------------------------------------------


def message_requests(states, rng, index, sender, instance):
    """The requests Postfix 3.7's smtpd sends for one message with one recipient, one per protocol state."""
    recipient = f"rcpt{rng.randrange(10**6)}@example.net"
    size = 2000 + rng.randrange(60000)
    requests = []
    for state in states:
        in_rcpt = state == "RCPT"
        attributes = {
            "request": "smtpd_access_policy",
            "protocol_state": state,
            "protocol_name": "ESMTP",
            "helo_name": "laptop.home.example",
            "queue_id": "" if in_rcpt else f"4Z{index:010X}",
            "sender": sender,
            "recipient": recipient,
            "recipient_count": "0" if in_rcpt else "1",
            "client_address": "198.51.100.7",
            "client_name": "unknown",
            "reverse_client_name": "unknown",
            "instance": instance,
            "sasl_method": "PLAIN",
            "sasl_username": sender,
            "sasl_sender": "",
            "size": str(size) if state == "END-OF-MESSAGE" else "0",
            "ccert_subject": "",
            "ccert_issuer": "",
            "ccert_fingerprint": "",
            "ccert_pubkey_fingerprint": "",
            "encryption_protocol": "TLSv1.3",
            "encryption_cipher": "TLS_AES_256_GCM_SHA384",
            "encryption_keysize": "256",
            "etrn_domain": "",
            "stress": "",
            "client_port": str(40000 + index % 20000),
            "policy_context": "",
            "server_address": "192.0.2.25",
            "server_port": "587",
        }
        requests.append("".join(f"{k}={v}\n" for k, v in attributes.items()).encode() + b"\n")
    return requests


def answer_key(action):
    """How answers are grouped: the action word, and for a numeric action its enhanced status code."""
    words = action.split()
    if not words:
        return "(empty)"
    if re.fullmatch(r"[245]\d\d", words[0]) and len(words) > 1 and re.fullmatch(r"\d\.\d{1,3}\.\d{1,3}", words[1]):
        return f"{words[0]} {words[1]}"
    if words[0].upper() == "FILTER" and len(words) > 1:
        return f"FILTER {words[1]}"
    return words[0].upper()


def client(port, spec, conn, ready, go, results):
    """One connection, in its own process: messages until spec's deadline (or spec's messages are done)."""
    rng = random.Random(spec["seed"] * 1000 + conn)
    latencies = array("d")
    answers, samples, failures = Counter(), {}, Counter()
    requests = messages = 0
    sock = None
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        failures[f"connect: {exc}"] += 1
    ready.put(conn)
    deadline = go.get()
    cpu_began = resource.getrusage(resource.RUSAGE_SELF)
    began = time.monotonic()
    heavy, others, share = spec["heavy"], spec["others"], spec["heavy_share"]
    # Paced (--rate): this connection's messages are due every `interval` seconds, the connections staggered.
    interval = spec["connections"] / spec["rate"] if spec.get("rate") else 0.0
    while sock is not None and time.monotonic() < deadline:
        if spec["messages"] is not None and messages >= spec["messages"]:
            break
        if interval:
            wait = began + interval * (messages + conn / spec["connections"]) - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        if spec["senders"] is not None:
            sender = spec["senders"][conn][0]
        elif heavy and rng.random() < share:
            sender = address(rng.choice(heavy))
        else:
            sender = address(rng.randrange(*others))
        index = conn * 10**8 + messages
        instance = f"{os.getpid():x}.{spec['seed']:x}.{index:x}"
        messages += 1
        for request in message_requests(spec["states"], rng, index, sender, instance):
            sent = time.perf_counter()
            try:
                sock.sendall(request)
                data = read_answer(sock)
            except OSError as exc:
                failures[f"{type(exc).__name__}: {exc}"] += 1
                sock.close()
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    sock = None
                break
            latencies.append(time.perf_counter() - sent)
            requests += 1
            text = data.decode(errors="replace")
            action = text.split("\n", 1)[0]
            if not action.startswith("action="):
                failures[f"answer without action=: {text[:80]!r}"] += 1
                break
            action = action.removeprefix("action=")
            key = answer_key(action)
            answers[key] += 1
            samples.setdefault(key, action)
            if REFUSAL.match(action):
                break  # Postfix refuses the recipient or the message: no further state for it
    ended = time.monotonic()
    cpu_ended = resource.getrusage(resource.RUSAGE_SELF)
    if sock is not None:
        sock.close()
    results.put(
        {
            "latencies": latencies.tobytes(),
            "answers": dict(answers),
            "samples": samples,
            "failures": dict(failures),
            "requests": requests,
            "messages": messages,
            "began": began,
            "ended": ended,
            "cpu": (cpu_ended.ru_utime + cpu_ended.ru_stime) - (cpu_began.ru_utime + cpu_began.ru_stime),
        }
    )


def drive(server, connections, *, seconds=None, messages=None, senders=None, spec):
    """`connections` client processes against `server` for `seconds` (or `messages` each); the merged figures."""
    context = multiprocessing.get_context("fork")
    ready, go, results = context.Queue(), context.Queue(), context.Queue()
    run_spec = {**spec, "states": server.states, "messages": messages, "senders": senders, "connections": connections}
    if messages is not None:
        run_spec["rate"] = None  # filling up to the limit is never paced
    procs = [
        context.Process(target=client, args=(server.port, {**run_spec}, conn, ready, go, results), daemon=True)
        for conn in range(connections)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=60)
    cpu_before = server_cpu(server)
    deadline = time.monotonic() + (seconds if seconds is not None else 3600)
    for _ in procs:
        go.put(deadline)
    merged = {"latencies": array("d"), "answers": Counter(), "failures": Counter(), "requests": 0, "messages": 0}
    began, ended, client_cpu = [], [], 0.0
    for _ in procs:
        one = results.get(timeout=(seconds or 3600) + 120)
        part = array("d")
        part.frombytes(one["latencies"])
        merged["latencies"].extend(part)
        merged["answers"].update(one["answers"])
        merged["failures"].update(one["failures"])
        merged["requests"] += one["requests"]
        merged["messages"] += one["messages"]
        began.append(one["began"])
        ended.append(one["ended"])
        client_cpu += one["cpu"]
        for key, action in one["samples"].items():
            server.samples.setdefault(key, action)
    merged["server_cpu"] = server_cpu(server) - cpu_before
    for proc in procs:
        proc.join(timeout=10)
    merged["elapsed"] = max(ended) - min(began)
    merged["client_cpu"] = client_cpu
    return merged


def fill_to_limit(server, heavy, limit, spec):
    """Brings the heavy people to the limit, untimed: `limit` messages each, one connection per person."""
    if not heavy or not server.counts:
        return
    began = time.monotonic()
    result = drive(server, len(heavy), messages=limit, senders=[[address(i)] for i in heavy], spec=spec)
    answers = result["answers"]
    refused = sum(count for key, count in answers.items() if REFUSAL.match(server.samples.get(key, key)))
    print(
        f"  {server.label}: {len(heavy)} people brought to {limit} recipients in {time.monotonic() - began:.1f} s "
        f"({format_answers(answers)}{f'; {refused} REFUSED before the limit' if refused else ''})",
        flush=True,
    )
    server.samples.clear()


def format_answers(answers):
    total = sum(answers.values()) or 1
    return ", ".join(f"{key} {count:,} ({count / total:.1%})" for key, count in answers.most_common())


def row(label, connections, result):
    lat = result["latencies"]
    requests, elapsed = result["requests"], result["elapsed"] or 1e-9
    if requests:
        p50, p99 = harness.percentile(lat, 0.50) * 1000, harness.percentile(lat, 0.99) * 1000
        top = max(lat) * 1000
        cpu_us = f"{result['server_cpu'] / requests * 1e6:.0f}"
        client_us = f"{result['client_cpu'] / requests * 1e6:.0f}"
    else:
        p50 = p99 = top = float("nan")
        cpu_us = client_us = "-"
    failures = sum(result["failures"].values())
    rates = f"{requests:>9,} {requests / elapsed:>9,.0f} {result['messages'] / elapsed:>8,.0f}"
    times = f"{p50:>7.2f} {p99:>7.2f} {top:>8.2f} {cpu_us:>7} {client_us:>7}"
    print(
        f"  {connections:>4} {label:<30} {rates} {times} {failures:>5}  {format_answers(result['answers'])}", flush=True
    )
    for reason, count in result["failures"].most_common(3):
        print(f"       {count} x {reason[:160]}")


HEADER = (
    f"  {'conn':>4} {'server':<30} {'requests':>9} {'req/s':>9} {'msg/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
    f"{'max ms':>8} {'srv µs':>7} {'cli µs':>7} {'fail':>5}  answers"
)


# --- the run -----------------------------------------------------------------------------------------


def manage_commands(env):
    done = subprocess.run(
        [harness.PYTHON, "manage.py", "help", "--commands"], cwd=harness.ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py help --commands failed:\n{done.stderr[-2000:]}")
    return set(done.stdout.split())


def our_server(env, temp_dir, name, states):
    port = harness.free_port()
    argv = [harness.PYTHON, "manage.py", "policy_server", "--listen", f"127.0.0.1:{port}"]
    return Server(
        "policy_server", argv, port, temp_dir / f"policy-server-{name}.log", env=env, states=states, counts=True
    )


def run(args, temp_dir):
    cpus, usable = harness.cpu_counts()
    heavy = list(range(args.heavy))
    spec = {
        "seed": args.seed,
        "heavy": heavy,
        "others": (args.heavy, args.people),
        "heavy_share": args.heavy_share,
        "rate": args.rate,
    }
    if args.people <= args.heavy:
        raise SystemExit("--people must be above --heavy.")
    our_states = args.our_states.split(",")
    policyd_states = args.policyd_states.split(",")
    python = policyd_python(args)
    with Database(args, temp_dir, "main") as database:
        has_ours = "policy_server" in manage_commands(database.env)
        print(f"Creating {args.people:,} people (tier daily_send_limit {args.limit}) ...", flush=True)
        create_people(database.env, temp_dir, args.people, args.limit, "main")
        servers = [
            Server(
                "DUNNO server (client ceiling)",
                [harness.PYTHON, "-c", DUNNO_SERVER, str(port := harness.free_port())],
                port,
                temp_dir / "dunno.log",
                states=our_states,
                counts=False,
            )
        ]
        if has_ours:
            servers.append(our_server(database.env, temp_dir, "main", our_states))
        else:
            print("manage.py has no `policy_server` command yet (issue 14): measuring the others only.")
        for kind in args.policyd_db.split(","):
            port = harness.free_port()
            config = temp_dir / f"policyd-{kind}.yaml"
            db = ":memory:" if kind == "memory" else temp_dir / "policyd.sqlite3"
            policyd_config(config, port, db, args.limit)
            servers.append(
                Server(
                    f"policyd-rate-limit ({kind})",
                    [str(python), "-c", POLICYD_SERVER, str(config)],
                    port,
                    temp_dir / f"policyd-{kind}.log",
                    states=policyd_states,
                    counts=True,
                )
            )
        entered = []
        try:
            for server in servers:
                entered.append(server.__enter__())
                print(f"  {server.label} on 127.0.0.1:{server.port} answered after {server.started:.1f} s", flush=True)
            print(f"Bringing {len(heavy)} people to the limit of {args.limit} recipients a day ...", flush=True)
            for server in servers:
                fill_to_limit(server, heavy, args.limit, spec)
            print(
                f"\n{args.seconds:g} s per phase; {cpus} CPUs ({usable} usable) shared by client and servers; "
                f"states per message: ours {'+'.join(our_states)}, policyd-rate-limit {'+'.join(policyd_states)}; "
                f"{args.heavy_share:.0%} of messages from the {len(heavy)} people at the limit."
            )
            if args.rate:
                print(
                    f"  Paced: {args.rate:g} messages/s in all, spread over the connections (else as fast as it goes)."
                )
            print("  srv µs / cli µs: CPU time of the server / of the client processes per request.")
            print(HEADER)
            figures = {}
            for connections in args.connections:
                for server in servers:
                    spec["seed"] += 1
                    result = drive(server, connections, seconds=args.seconds, spec=spec)
                    figures[(server.label, connections)] = result
                    row(server.label, connections, result)
                    if server.proc.poll() is not None:
                        print(f"  {server.label} EXITED with status {server.proc.returncode}:\n{server.log_tail()}")
                print()
            print("Refusals as answered (first seen of each kind):")
            for server in servers:
                for action in server.samples.values():
                    if REFUSAL.match(action):
                        print(f"  {server.label}: action={action}")
            summarize(figures, args.connections, has_ours, args.policyd_db.split(","))
            print("\nMemory (VmRSS after the timed phases):")
            for server in servers:
                print(f"  {server.label:<30} {vm_rss_mib(server.proc.pid):>7.1f} MiB")
            for server in servers:
                scan_log(server)
        finally:
            for server in reversed(entered):
                server.__exit__()
    if has_ours and args.memory_people:
        with Database(args, temp_dir, "memory") as database:
            print(f"\nCreating {args.memory_people:,} people for the memory figure ...", flush=True)
            create_people(database.env, temp_dir, args.memory_people, args.limit, "memory")
            with our_server(database.env, temp_dir, "memory", our_states) as server:
                one = drive(server, 1, messages=1, senders=[address(args.memory_people - 1)], spec=spec)
                rss = vm_rss_mib(server.proc.pid)
                print(
                    f"  policy_server with {args.memory_people:,} people: answered after {server.started:.1f} s, "
                    f"VmRSS {rss:.1f} MiB after one message ({format_answers(one['answers'])})"
                )
                scan_log(server)
    return 0


def summarize(figures, connection_counts, has_ours, policyd_kinds):
    if not has_ours:
        return
    print("\nAgainst the goal (at least 3x policyd-rate-limit's throughput, p99 under 5 ms at 32 connections):")
    for connections in connection_counts:
        ours = figures.get(("policy_server", connections))
        for kind in policyd_kinds:
            theirs = figures.get((f"policyd-rate-limit ({kind})", connections))
            if not ours or not theirs or not theirs["requests"]:
                continue
            req = (ours["requests"] / ours["elapsed"]) / (theirs["requests"] / theirs["elapsed"])
            msg = (ours["messages"] / ours["elapsed"]) / (theirs["messages"] / theirs["elapsed"])
            print(f"  {connections:>3} connections vs policyd-rate-limit ({kind}): {req:.2f}x req/s, {msg:.2f}x msg/s")
        if ours and ours["requests"]:
            p99 = harness.percentile(ours["latencies"], 0.99) * 1000
            print(f"  {connections:>3} connections: policy_server p99 {p99:.2f} ms")


def scan_log(server):
    text = Path(server.log_path).read_text(errors="replace")
    markers = ("Traceback", "ERROR", "CRITICAL", "WARNING", "Error")
    lines = [line for line in text.splitlines() if any(marker in line for marker in markers)]
    if lines:
        print(f"  {server.label} log: {len(lines)} error/warning lines; the first ones:")
        for line in lines[:8]:
            print(f"    {line[:200]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each timed phase (default 10)")
    parser.add_argument(
        "--connections",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 8, 32],
        help="connection counts, comma-separated (default 1,8,32)",
    )
    parser.add_argument(
        "--rate", type=float, help="paced: messages per second in all (default: each connection as fast as it goes)"
    )
    parser.add_argument("--people", type=int, default=1000, help="people with a mailbox for the timed phases")
    parser.add_argument("--limit", type=int, default=500, help="recipients per person per day (default 500)")
    parser.add_argument("--heavy", type=int, default=4, help="people brought to the limit before the phases")
    parser.add_argument("--heavy-share", type=float, default=0.05, help="share of messages from them (default 0.05)")
    parser.add_argument("--memory-people", type=int, default=100_000, help="people for the memory figure (0: skip)")
    parser.add_argument("--our-states", default="RCPT,END-OF-MESSAGE", help="states sent to policy_server")
    parser.add_argument("--policyd-states", default="DATA", help="states sent to policyd-rate-limit (default DATA)")
    parser.add_argument("--policyd-db", default="file,memory", help="policyd-rate-limit SQLite: file, memory or both")
    parser.add_argument("--policyd-venv", help="policyd-rate-limit's venv (created when missing)")
    parser.add_argument("--policyd-python", default="python3", help="python that creates that venv (below 3.12)")
    parser.add_argument("--postgres", action="store_true", help="a fresh PostgreSQL database on 127.0.0.1:5432")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the client")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temporary directory (server logs)")
    args = parser.parse_args()
    return harness.run_bench(run, args, "dockspace-policy-bench-")


if __name__ == "__main__":
    sys.exit(main())
