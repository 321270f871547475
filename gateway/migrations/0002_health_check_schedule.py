"""The beat schedule of the upstream health checks (editable under Periodic tasks)."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import migrations
from django.utils import timezone

TASK = "gateway.check_upstreams"
NAME = "Check upstream health"


def create_schedule(apps: Any, schema_editor: Any) -> None:
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    tracker_model = apps.get_model("django_celery_beat", "PeriodicTasks")
    every = max(1, round(settings.KODIFY_MODEL_REFRESH_INTERVAL))
    interval, _ = interval_model.objects.get_or_create(every=every, period="seconds")
    now = timezone.now()
    _, created = task_model.objects.get_or_create(
        name=NAME,
        defaults={
            "task": TASK,
            "interval": interval,
            # A check still queued when the next one is due is worth nothing.
            "expire_seconds": every,
            # In the past: the first beat to start checks at once, not `every` later.
            "start_time": now - timedelta(seconds=every),
            "description": "Reads every enabled upstream's /health and /v1/models and "
            "stores its state (shown in the console and in GET /health). Every "
            f"KODIFY_MODEL_REFRESH_INTERVAL ({every} s) by default.",
        },
    )
    if created:
        # What the model's own signal would do: a running beat reloads its schedule.
        tracker_model.objects.update_or_create(ident=1, defaults={"last_update": now})


def delete_schedule(apps: Any, schema_editor: Any) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("gateway", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
