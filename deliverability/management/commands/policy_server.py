"""manage.py policy_server: the Postfix policy service (deliverability.policy_server)."""

import asyncio
import contextlib
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from deliverability.policy_config import config_fingerprint, load_config
from deliverability.policy_counters import counters_file, open_counters
from deliverability.policy_server import Policy, PolicyServer
from dockspace.ports import parse_bind

# How often the counters file's WAL is copied into it (FileCounters): between two, the WAL grows by what was counted.
CHECKPOINT_SECONDS = 1.0


def event_loop_factory():
    """uvloop's event loop (libuv): the same asyncio protocols with far less work per request on the hot path;
    asyncio's own where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class Command(BaseCommand):
    help = (
        "Run the Postfix policy service: Postfix asks it about every message (check_policy_service in the restriction "
        "lists that postfix-main.cf sets when DOCKSPACE_POLICY_SERVICE is set). It refuses mail over a tier's daily "
        "send limits (452, with the limit named) or with too many recipients (550), refuses suspended and disabled "
        "senders (554), and routes pooled mail to an IP with room in its warmup caps (FILTER), holding it when none "
        "has. Counters live in Redis with REDIS_URL (several servers count together), else in "
        "DATA_DIR/policy-counters.sqlite3 (one server). Configuration changes are picked up within "
        "DOCKSPACE_POLICY_RELOAD_SECONDS. Stop with Ctrl-C or SIGTERM."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--listen",
            default=None,
            metavar="HOST:PORT",
            help="Where to listen (default DOCKSPACE_POLICY_LISTEN, 127.0.0.1:10040).",
        )

    def handle(self, *args, **options):
        listen = options["listen"] or settings.POLICY_LISTEN
        try:
            host, port = parse_bind(listen, setting="--listen")
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        counters = open_counters(checkpoint_seconds=CHECKPOINT_SECONDS)
        fingerprint = config_fingerprint()
        config = load_config()
        policy = Policy(config, counters)
        server = PolicyServer(
            policy,
            load=load_config,
            fingerprint=config_fingerprint,
            reload_seconds=settings.POLICY_RELOAD_SECONDS,
            loaded_fingerprint=fingerprint,
            release_command=settings.POLICY_RELEASE_COMMAND,
            allowed_clients=settings.POLICY_ALLOWED_CLIENTS,
            max_connections=settings.POLICY_MAX_CONNECTIONS,
        )
        store = "Redis" if settings.REDIS_URL else str(counters_file())
        self.stdout.write(
            f"Policy service listening on {host or '*'}:{port} ({len(config.senders)} senders, counters in {store})."
        )
        try:
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                runner.run(self._serve(server, host or None, port))
        except OSError as exc:
            raise CommandError(f"--listen {listen}: {exc.strerror or exc}.") from None
        finally:
            counters.close()

    async def _serve(self, server: PolicyServer, host, port):
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve(host, port)
        self.stdout.write("Policy service stopped.")
