"""The extension app's metric for /metrics, read from its own table at each scrape (monitoring reads every app's
`metrics_collectors()`)."""

from prometheus_client.core import GaugeMetricFamily

from dockspace.tests.extension_app.models import BlockedHelo


class BlockedHeloCollector:
    def collect(self):
        yield GaugeMetricFamily(
            "dockspace_extension_blocked_helos",
            "HELO names Postfix refuses (test extension).",
            BlockedHelo.objects.count(),
        )
