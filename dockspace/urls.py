from django.contrib import admin
from django.urls import include, path

from monitoring import views as monitoring_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", monitoring_views.healthz, name="healthz"),
    path("", include("oidc.urls")),
    path("", include("oidc.profile_urls")),
    path("", include("accounts.urls")),
]

handler400 = "dockspace.errors.bad_request"
handler403 = "dockspace.errors.permission_denied"
handler404 = "dockspace.errors.page_not_found"
handler500 = "dockspace.errors.server_error"
