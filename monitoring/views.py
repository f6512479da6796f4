"""Health and metrics endpoints: /healthz (the image's HEALTHCHECK), /health (liveness), /health/ready (readiness,
application/health+json) and /metrics (Prometheus). All answer before the first account exists (accounts'
OPEN_PREFIXES) and are exempt from the HTTPS redirect (settings.SECURE_REDIRECT_EXEMPT)."""

import json
import logging

from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from monitoring import exposition, health
from monitoring.scrape_access import scrape_refusal

HEALTH_JSON = "application/health+json"

log = logging.getLogger(__name__)


@never_cache
def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any database failure means "not healthy", reported without a traceback
        return JsonResponse({"status": "error", "database": type(exc).__name__}, status=503)
    return JsonResponse({"status": "ok"})


def _health_json(document, status=200):
    return HttpResponse(json.dumps(document, indent=1), content_type=HEALTH_JSON, status=status)


@never_cache
@require_safe
def liveness(request):
    """The process answers: touches neither the database nor the cache (a blip there must not restart it)."""
    return _health_json({"status": health.PASS, "description": "Dockspace liveness: the web process answers"})


@never_cache
@require_safe
def readiness(request):
    # The errors behind a failing check and the observed values: only for whoever may read /metrics.
    status, document = health.readiness(detailed=scrape_refusal(request) is None)
    if status != health.FAIL:
        return _health_json(document)
    response = _health_json(document, status=503)
    # One line naming what fails, instead of Django's "Service Unavailable" error for every probe while not ready.
    failing = [key for key, entries in document["checks"].items() if any(e["status"] == health.FAIL for e in entries)]
    log.warning("not ready: %s", ", ".join(failing))
    response._has_been_logged = True  # read by django.utils.log.log_response
    return response


@never_cache
@require_safe
def metrics(request):
    refusal = scrape_refusal(request)
    if refusal is not None:
        return HttpResponse(
            refusal.message, status=refusal.status, headers=refusal.headers, content_type="text/plain; charset=utf-8"
        )
    body, content_type = exposition.scrape(request.META.get("HTTP_ACCEPT", ""))
    return HttpResponse(body, content_type=content_type)
