"""/metrics: a registry built afresh for each scrape from two sources, in Prometheus' text format.

- What processes counted (monitoring.metrics): when this process counts in files (PROMETHEUS_MULTIPROC_DIR, set by
  dockspace.processes to its own subdirectory of settings.METRICS_DIR), the files of every process under
  METRICS_DIR are merged: the other gunicorn workers, the Celery worker and its pool children, also in another
  container sharing the data volume. A counter of a process that ended stays counted until that kind of process
  starts again (then Prometheus sees a counter reset, which rate() handles). Without the variable, this process's
  own IN_PROCESS registry.
- What the database knows, read now: the collectors each app declares with `AppConfig.metrics_collectors()` (the
  hook: return objects with a `collect()` yielding prometheus_client metric families, e.g. GaugeMetricFamily).
  An app whose collector fails is left out of that scrape and logged; dockspace_metrics_collector_up{app} says so.
"""

import logging
import os
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from dockspace.processes import MULTIPROC_VARIABLE
from monitoring.metrics import IN_PROCESS

log = logging.getLogger(__name__)


def counter_files() -> list[str] | None:
    """The files to merge, or None when this process counts in memory. A PROMETHEUS_MULTIPROC_DIR inside
    METRICS_DIR is one of dockspace.processes' per-process directories: all of them are read. One set elsewhere (a
    process started by other means) is read alone."""
    own = os.environ.get(MULTIPROC_VARIABLE)
    if not own:
        return None
    own_dir, root = Path(own).resolve(), Path(settings.METRICS_DIR).resolve()
    pattern = root.glob("*/*.db") if own_dir.parent == root else own_dir.glob("*.db")
    return sorted(str(path) for path in pattern)


class CountedInProcesses:
    def collect(self):
        files = counter_files()
        if files is None:
            yield from IN_PROCESS.collect()
            return
        try:
            families = MultiProcessCollector.merge(files, accumulate=True)
        except FileNotFoundError:  # a process starting again emptied its directory meanwhile: read what is there
            families = MultiProcessCollector.merge(counter_files() or [], accumulate=True)
        yield from families


def declared_collectors():
    """[(app label, [collectors])] from every app's `metrics_collectors()`, in INSTALLED_APPS order."""
    declared = []
    for config in apps.get_app_configs():
        hook = getattr(config, "metrics_collectors", None)
        if not callable(hook):
            continue
        collectors = list(hook())
        for collector in collectors:
            if not callable(getattr(collector, "collect", None)):
                raise ImproperlyConfigured(
                    f"{config.label}.metrics_collectors() returned {collector!r}: each item needs a collect() method "
                    "yielding prometheus_client metric families."
                )
        declared.append((config.label, collectors))
    return declared


class AppCollectors:
    """Every app's collectors; one that raises leaves its app out of this scrape (and is logged)."""

    def collect(self):
        up = GaugeMetricFamily(
            "dockspace_metrics_collector_up",
            "1 when an app's metrics were read from the database at this scrape, 0 when reading them failed.",
            labels=["app"],
        )
        for label, collectors in declared_collectors():
            try:
                families = [family for collector in collectors for family in collector.collect()]
            except Exception:  # one app's failure (a database error) must not hide the rest
                log.exception("metrics: reading the metrics of %s failed", label)
                up.add_metric([label], 0)
                continue
            up.add_metric([label], 1)
            yield from families
        yield up


def scrape(accept_header: str = "") -> tuple[bytes, str]:
    """(body, content type) of one scrape, in the format the scraper accepts (Prometheus text by default)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CountedInProcesses())
    registry.register(AppCollectors())
    encoder, content_type = choose_encoder(accept_header)
    return encoder(registry), content_type
