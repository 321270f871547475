"""Kodify server: the Django project (settings, ASGI application, Celery app)."""

from kodify_site.celery import app as celery_app

__version__ = "0.1.0"
__all__ = ("__version__", "celery_app")
