"""No two modules of an app import each other, directly or round a loop (tests aside). import-linter's
acyclic_siblings contract would count a subpackage such as mail.dms as one unit; this counts modules."""

import tomllib
from pathlib import Path

import grimp
import pytest

# The apps import-linter checks (pyproject.toml): an app added there is checked here too.
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
APPS = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["root_packages"]
# django-oauth-toolkit asks the Application model for its signing key (Application.jwk_key, imported when asked);
# oidc.keys, the one module that touches key material, answers and reads its rows from oidc.models.
ALLOWED = {("oidc.models", "oidc.keys")}


def cycles(graph, modules, allowed=ALLOWED):
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    edges = {
        m: sorted(i for i in graph.find_modules_directly_imported_by(m) if i in modules and (m, i) not in allowed)
        for m in modules
    }
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            for offset, successor in enumerate(edges[node][position:], start=position):
                if successor not in index:
                    work += [(node, offset + 1), (successor, 0)]
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    return found


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*APPS, cache_dir=None)


@pytest.mark.parametrize("app", APPS)
def test_no_import_cycle_between_the_modules_of_an_app(graph, app):
    modules = {m for m in graph.find_descendants(app) | {app} if ".tests" not in f"{m}."}
    assert cycles(graph, modules) == []


def test_the_check_finds_a_cycle(graph):
    """Positive control: without its one exception, oidc's loop is found."""
    oidc = {m for m in graph.find_descendants("oidc") if ".tests" not in f"{m}."}
    assert cycles(graph, oidc, allowed=set()) == [["oidc.keys", "oidc.models"]]
