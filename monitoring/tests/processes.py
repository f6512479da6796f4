"""Starting Dockspace's real processes (web, worker, beat) from a test, as the image does (`python -m
dockspace.processes run NAME`), on the test database, and talking to the web one over HTTP."""

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from http.cookies import SimpleCookie

from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from dockspace.tests.celery_processes import database_url


def process_env(**extra):
    return {**os.environ, "DATABASE_URL": database_url(), **extra}


@contextmanager
def running(tmp_path, *processes):
    """Start each (name, env, extra args) with `python -m dockspace.processes run`; stop them all on the way out.
    Yields {name: log path}."""
    started, logs = [], {}
    try:
        for name, env, extra in processes:
            logs[name] = tmp_path / f"{name}.log"
            with open(logs[name], "w") as out:
                started.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "dockspace.processes", "run", name, *extra],
                        cwd=settings.BASE_DIR,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        yield logs
    finally:
        for proc in started:
            proc.terminate()
        for proc in started:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Web:
    """A browser-like client of the web process on 127.0.0.1:`port`: a new connection per request, its cookies sent
    back over plain http although they carry the Secure flag (tests run with production settings)."""

    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.cookies = {}

    def _open(self, request, timeout):
        if self.cookies:
            request.add_header("Cookie", "; ".join(f"{name}={value}" for name, value in self.cookies.items()))
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            response = exc
        with response:
            for header in response.headers.get_all("Set-Cookie") or []:
                jar = SimpleCookie()
                jar.load(header)
                self.cookies.update({name: morsel.coded_value for name, morsel in jar.items()})
            return response.status, response.read()

    def get(self, path, timeout=10, headers=None):
        """(status, body) of GET path (redirects followed), with `headers` added."""
        return self._open(urllib.request.Request(self.base + path, headers=headers or {}), timeout)

    def post_form(self, path, data):
        """GET the form for its CSRF token, then POST it; (status, body) of the POST."""
        _, page = self.get(path)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": token}).encode()
        return self._open(urllib.request.Request(self.base + path, data=body), 30)

    def wait_for(self, path, status=200, seconds=120, logs=None):
        deadline = time.monotonic() + seconds
        while True:
            try:
                answer = self.get(path)
                if answer[0] == status:
                    return answer
            except OSError:
                answer = None
            if time.monotonic() > deadline:
                tails = {name: path.read_text()[-3000:] for name, path in (logs or {}).items()}
                raise AssertionError(f"{path} did not answer {status} in {seconds} s: {answer!r}\n{tails}")
            time.sleep(0.5)

    def metrics(self):
        status, body = self.get("/metrics")
        assert status == 200, body
        return {family.name: family for family in text_string_to_metric_families(body.decode())}


def sample_value(families, name, sample=None, **labels):
    """One sample's value (0 when absent: a labelled counter has no series before its first count)."""
    family = families.get(name)
    if family is None:
        return 0
    wanted = sample or (name + "_total" if family.type == "counter" else name)
    found = [s.value for s in family.samples if s.name == wanted and s.labels == labels]
    return found[0] if found else 0
