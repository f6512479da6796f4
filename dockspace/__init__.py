"""Dockspace: the mail-and-identity control plane for Docker Mailserver."""

from .celery import app as celery_app

__all__ = ("celery_app",)
