from django.urls import path

from monitoring import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("health", views.liveness, name="health"),
    path("health/ready", views.readiness, name="health_ready"),
    path("metrics", views.metrics, name="metrics"),
]
