from django.apps import AppConfig


class DeliverabilityConfig(AppConfig):
    name = "deliverability"
