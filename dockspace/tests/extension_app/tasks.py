"""The extension app's periodic task: thin, like every app's (it counts the people, to show it reads the database)."""

from celery import shared_task
from django.contrib.auth import get_user_model


@shared_task(name="extension_app.count_people", is_periodic=True)
def count_people():
    return f"{get_user_model().objects.count()} people"
