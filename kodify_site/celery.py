"""The Celery app. Tasks are discovered in the installed apps.

Without REDIS_URL the settings make every task run eagerly in the caller's process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kodify_site.settings")

app = Celery("kodify")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
