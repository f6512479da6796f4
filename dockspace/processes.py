"""Dockspace's long-running processes, declared once as data: how each starts, whether `make run` starts it and
the address it listens on. `make run` (dockspace.devserver) and the image's entrypoint both start them from here,
each with PROMETHEUS_MULTIPROC_DIR set to its own, emptied, subdirectory of settings.METRICS_DIR (what /metrics adds
up).

An app adds one with a `processes()` method on its AppConfig returning `Process` declarations. On the command line:
`python -m dockspace.processes list` shows every declared process, `... run NAME [ARG ...]` becomes that process
(the image's entrypoint), `... plan` prints, as JSON, what `make run` starts with the current environment."""

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from django.core.exceptions import ImproperlyConfigured

from dockspace.env import env_int, env_list, env_str
from dockspace.ports import parse_bind
from dockspace.private_files import private_dir

# Which processes `make run` starts: comma-separated names; unset or empty, the processes on by default.
SELECTION_SETTING = "DOCKSPACE_PROCESSES"
NAME_RULE = re.compile(r"[a-z][a-z0-9-]*\Z")
# The entrypoint's first argument is a process name, except `manage ARGS` (a management command).
RESERVED_NAMES = frozenset({"manage"})

Environ = Mapping[str, str]


@dataclass(frozen=True)
class Process:
    """One long-running process.

    `argv(environ)` builds its command line when it starts, from the environment (e.g. gunicorn's bind and
    workers). A process that listens names the variable holding its HOST:PORT (`bind_setting`, default
    `bind_default`): `make run` refuses to start anything while that address is taken, and starts the next
    process only once this one accepts connections. `env` is added to its environment. A process with
    `needs_setting` runs only when that variable is set (not empty): without it `make run` leaves it off and says
    so, and `run` refuses it."""

    name: str
    description: str
    argv: Callable[[Environ], Sequence[str]]
    on_by_default: bool = True
    bind_setting: str = ""
    bind_default: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    needs_setting: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    def command(self, environ: Environ | None = None) -> list[str]:
        return [str(part) for part in self.argv(os.environ if environ is None else environ)]

    def off_reason(self, environ: Environ | None = None) -> str:
        """Why this process cannot run with this environment ("" when it can)."""
        if self.needs_setting and not (env_str(self.needs_setting, "", environ) or "").strip():
            return f"{self.needs_setting} is not set"
        return ""

    def bind(self, environ: Environ | None = None) -> str | None:
        """HOST:PORT this process listens on (None: it listens on nothing); ImproperlyConfigured if unusable."""
        if not self.bind_setting:
            return None
        bind = env_str(self.bind_setting, self.bind_default, environ)
        try:
            parse_bind(bind, setting=self.bind_setting)
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from None
        return bind


def collect_processes(app_configs=None) -> list[Process]:
    """Every app's declared processes, in INSTALLED_APPS order (an app's own order within it)."""
    if app_configs is None:
        from django.apps import apps

        app_configs = apps.get_app_configs()
    declared: dict[str, tuple[str, Process]] = {}
    for config in app_configs:
        hook = getattr(config, "processes", None)
        if not callable(hook):
            continue
        for process in hook():
            if not isinstance(process, Process):
                raise ImproperlyConfigured(
                    f"{config.label}.processes() returned {process!r}: each item must be a dockspace.processes.Process."
                )
            if not NAME_RULE.match(process.name) or process.name in RESERVED_NAMES:
                raise ImproperlyConfigured(
                    f"{config.label}.processes(): name {process.name!r} must be lowercase letters, digits and '-', "
                    f"starting with a letter, and not {', '.join(sorted(RESERVED_NAMES))}."
                )
            if process.name in declared:
                raise ImproperlyConfigured(
                    f"process {process.name!r} is declared twice: by {declared[process.name][0]} and by {config.label}."
                )
            declared[process.name] = (config.label, process)
    return [process for _, process in declared.values()]


def selected_processes(processes: Sequence[Process], environ: Environ | None = None) -> list[Process]:
    """The processes `make run` starts, in declaration order: those named in DOCKSPACE_PROCESSES, or (unset or
    empty) those on by default; of those, the ones whose needed setting is set (processes_off tells the others).
    An unknown name is refused with a message naming the setting."""
    return [process for process in _picked(processes, environ) if not process.off_reason(environ)]


def processes_off(processes: Sequence[Process], environ: Environ | None = None) -> list[tuple[Process, str]]:
    """(process, why) of those DOCKSPACE_PROCESSES or the defaults pick that cannot run for want of a setting."""
    picked = ((process, process.off_reason(environ)) for process in _picked(processes, environ))
    return [(process, why) for process, why in picked if why]


def _picked(processes: Sequence[Process], environ: Environ | None) -> list[Process]:
    names = env_list(SELECTION_SETTING, (), environ)
    if not names:
        return [process for process in processes if process.on_by_default]
    declared = [process.name for process in processes]
    unknown = [name for name in dict.fromkeys(names) if name not in declared]
    if unknown:
        raise ImproperlyConfigured(
            f"{SELECTION_SETTING}: unknown process {', '.join(map(repr, unknown))}; the declared processes are "
            f"{', '.join(declared)} (comma-separated, e.g. {SELECTION_SETTING}={','.join(declared[:2])})."
        )
    return [process for process in processes if process.name in names]


# --- Prometheus counters (monitoring's /metrics) -----------------------------------------------------------

# prometheus_client counts in files when this variable is set as the process starts (it decides at import).
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir_of(name: str) -> str:
    """Where process NAME keeps its Prometheus counters: its own subdirectory of settings.METRICS_DIR, so a process
    that starts again empties only its own (the web container does not wipe what the worker container counted)."""
    from django.conf import settings

    return str(Path(settings.METRICS_DIR) / name)


def metrics_dir_prepare(path: str) -> dict[str, str]:
    """Create PATH (0700) and empty it of the counter files a previous run left; returns the environment that
    makes a process count there. Only prometheus_client's `*.db` files are removed, whatever PATH names."""
    directory = private_dir(path)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    return {MULTIPROC_VARIABLE: str(directory)}


# --- Dockspace's own processes (declared by dockspace.apps.DockspaceAdminConfig.processes) -------------------

DEFAULT_BIND = "127.0.0.1:8000"
# gunicorn's worker heartbeat touches a file every few seconds; on a disk-backed /tmp (a container's overlay
# filesystem) that can stall long enough for gunicorn to kill a healthy worker. Memory, where there is some.
HEARTBEAT_DIR = "/dev/shm"  # noqa: S108 - gunicorn creates its files there with mkstemp


def _program(name: str) -> str:
    """A console script installed next to this interpreter (.venv/bin, the image's /opt/venv/bin)."""
    return os.path.join(os.path.dirname(sys.executable), name)


def web_argv(environ: Environ) -> list[str]:
    argv = [
        _program("gunicorn"),
        "dockspace.wsgi",
        "--bind",
        env_str("DOCKSPACE_BIND", DEFAULT_BIND, environ),
        "--workers",
        str(env_int("WEB_CONCURRENCY", 2, minimum=1, environ=environ)),
        "--access-logfile",
        "-",
        # Reset and registration links carry a token in their path: logged as ***.
        "--logger-class",
        "dockspace.access_log.MaskingLogger",
        # gunicorn's control socket would live in ~/.gunicorn, outside the data directory; nothing uses it.
        "--no-control-socket",
        # Server hooks: tracing starts in each worker after the fork; a worker that exits is marked dead for the
        # Prometheus counters.
        "--config",
        "python:dockspace.gunicorn_config",
    ]
    if os.path.isdir(HEARTBEAT_DIR) and os.access(HEARTBEAT_DIR, os.W_OK):
        argv += ["--worker-tmp-dir", HEARTBEAT_DIR]
    proxies = env_list("DOCKSPACE_TRUSTED_PROXIES", (), environ)
    if proxies:
        # The list Django believes X-Forwarded-For from (settings.TRUSTED_PROXIES); gunicorn wants no spaces.
        argv += ["--forwarded-allow-ips", ",".join(proxies)]
    return argv


def worker_argv(environ: Environ) -> list[str]:
    argv = [_program("celery"), "-A", "dockspace", "worker", "--loglevel", "INFO"]
    concurrency = env_int("WORKER_CONCURRENCY", None, minimum=1, environ=environ)
    if concurrency is not None:  # unset: Celery's default, one child per CPU
        argv += ["--concurrency", str(concurrency)]
    return argv


def beat_argv(environ: Environ) -> list[str]:
    # The schedule lives in the database (django_celery_beat's DatabaseScheduler, set in settings).
    return [_program("celery"), "-A", "dockspace", "beat", "--loglevel", "INFO"]


def dockspace_processes() -> list[Process]:
    return [
        Process(
            name="web",
            description="the pages, the admin and OIDC (gunicorn) on DOCKSPACE_BIND",
            argv=web_argv,
            bind_setting="DOCKSPACE_BIND",
            bind_default=DEFAULT_BIND,
        ),
        Process(
            name="worker",
            description="Celery worker: DMS file writes, mail, and the periodic tasks' work",
            argv=worker_argv,
        ),
        Process(name="beat", description="Celery beat: sends the periodic tasks on their schedule", argv=beat_argv),
    ]


# --- command line -------------------------------------------------------------------------------------------


def _declared() -> list[Process]:
    import django

    django.setup()
    return collect_processes()


def _by_name(processes: Sequence[Process], name: str) -> Process:
    for process in processes:
        if process.name == name:
            return process
    raise ImproperlyConfigured(
        f"unknown process {name!r}; the declared processes are {', '.join(p.name for p in processes)} "
        "(python -m dockspace.processes list)."
    )


def list_processes() -> None:
    processes = _declared()
    starting = {process.name for process in selected_processes(processes)}
    off = {process.name: why for process, why in processes_off(processes)}
    width = max(len("NAME"), *(len(process.name) for process in processes))
    print(f"{'NAME':<{width}}  DEFAULT  MAKE RUN  DESCRIPTION")
    for process in processes:
        default = "on" if process.on_by_default else "off"
        make_run = "starts" if process.name in starting else "off" if process.name in off else "-"
        why = f" (off: {off[process.name]})" if process.name in off else ""
        print(f"{process.name:<{width}}  {default:<7}  {make_run:<8}  {process.description}{why}")
    chosen = env_list(SELECTION_SETTING, ())
    source = f"{SELECTION_SETTING}={','.join(chosen)}" if chosen else f"{SELECTION_SETTING} unset: the defaults"
    print(f"\n`make run` starts the processes marked 'starts' ({source}).")


def print_plan() -> None:
    """JSON for `make run`: the processes it starts, each with its command line built now, then those it leaves
    off for want of a setting (with "off": why)."""
    processes = _declared()
    plan: list[dict] = [
        {
            "name": process.name,
            "description": process.description,
            "argv": process.command(),
            "env": dict(process.env),
            "bind": process.bind(),
            "bind_setting": process.bind_setting,
            "metrics_dir": metrics_dir_of(process.name),
        }
        for process in selected_processes(processes)
    ]
    plan += [
        {"name": process.name, "description": process.description, "off": why}
        for process, why in processes_off(processes)
    ]
    print(json.dumps(plan, indent=1))


def run_process(name: str, extra: Sequence[str]) -> None:
    """Replace this Python with process NAME (the container keeps one process; signals reach it directly)."""
    process = _by_name(_declared(), name)
    why = process.off_reason()
    if why:
        raise ImproperlyConfigured(f"cannot start {name}: {why} ({process.description}).")
    argv = [*process.command(), *extra]
    directory = metrics_dir_of(name)
    try:
        counting = metrics_dir_prepare(directory)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"cannot start {name}: its metrics directory {directory}: {exc.strerror}. Check DOCKSPACE_METRICS_DIR."
        ) from None
    try:
        os.execvpe(argv[0], argv, {**os.environ, **process.env, **counting})  # noqa: S606 - the declared command line
    except OSError as exc:
        raise ImproperlyConfigured(f"cannot start {name}: {argv[0]}: {exc.strerror}.") from None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dockspace.processes",
        description="Dockspace's processes (web, worker, beat and any an app declares) and how each starts.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="show every declared process and whether `make run` starts it")
    commands.add_parser("names", help="the declared processes' names, one per line (the image's entrypoint)")
    commands.add_parser("plan", help="JSON: the processes `make run` starts now, with their command lines")
    run = commands.add_parser("run", help="become process NAME (the image's entrypoint); ARGs are appended")
    run.add_argument("name")
    run.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockspace.settings")
    try:
        if options.command == "list":
            list_processes()
        elif options.command == "names":
            print("\n".join(process.name for process in _declared()))
        elif options.command == "plan":
            print_plan()
        else:
            run_process(options.name, options.args)
    except ImproperlyConfigured as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    # Run as a script this file is `__main__`, a second copy of the module: use the importable one, whose
    # Process class is the one the apps' declarations are made of.
    from dockspace.processes import main as _main

    _main()
