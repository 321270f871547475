"""Operations tasks run by Celery (or eagerly in-process on embedded defaults)."""

from io import StringIO

from celery import shared_task
from django.core.management import call_command


@shared_task(name="kodify.run_migrations")
def run_migrations() -> str:
    """The console's "run migrations now": same as ``manage.py kodify_migrate``."""
    output = StringIO()
    call_command("kodify_migrate", stdout=output, verbosity=1)
    return output.getvalue()
