"""The site: each app's URLs, composed here by dotted path (the apps sit above dockspace and are not imported)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("monitoring.urls")),
    path("", include("oidc.urls")),
    path("", include("oidc.profile_urls")),
    path("", include("accounts.urls")),
]

handler400 = "dockspace.errors.bad_request"
handler403 = "dockspace.errors.permission_denied"
handler404 = "dockspace.errors.page_not_found"
handler500 = "dockspace.errors.server_error"
