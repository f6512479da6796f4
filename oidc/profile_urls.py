"""Self-service pages about apps: which ones a person signed into, and revoking one."""

from django.urls import path

from oidc import profile_views

app_name = "oidc"

urlpatterns = [
    path("profile/apps/<int:pk>/revoke/", profile_views.app_revoke, name="app_revoke"),
]
