"""Auditors read the audit trail (who changed which user or token), never change it."""

from django.db import migrations

from accounts.roles import AUDITORS, grant


def auditors_read_audit_trail(apps, schema_editor):
    grant(apps, AUDITORS, "accounts", {"auditevent": ("view",)})


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_username_case_insensitive")]
    operations = [migrations.RunPython(auditors_read_audit_trail, migrations.RunPython.noop)]
