"""API usernames: printable, and unique whatever their case (``alice`` and ``ALICE`` are one).

Stops, saying which, when existing usernames differ only in case: the administrator
renames all but one of each group in the console (API users; ``manage.py kodify_user
list`` lists them), then migrates again.  Nothing is renamed here: the journal names
users by username, and which of two accounts keeps the name is the administrator's
choice.
"""

from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import Lower

import accounts.usernames


def refuse_case_duplicates(apps, schema_editor):
    ApiUser = apps.get_model("accounts", "ApiUser")
    users = ApiUser.objects.using(schema_editor.connection.alias)
    clashing = (
        users.annotate(folded=Lower("username"))
        .values("folded")
        .annotate(count=Count("id"))
        .filter(count__gt=1)
        .order_by()
        .values_list("folded", flat=True)
    )
    groups = []
    for folded in clashing:
        names = users.annotate(folded=Lower("username")).filter(folded=folded)
        shown = names.order_by("id").values_list("username", flat=True)
        groups.append(", ".join(repr(name) for name in shown))
    if groups:
        raise RuntimeError(
            "Cannot make API usernames unique regardless of case: these users' names differ "
            f"only in case: {'; '.join(groups)}. Rename all but one of each group in the "
            "console (API users), then run the migrations again."
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_roles")]

    operations = [
        migrations.RunPython(refuse_case_duplicates, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="apiuser",
            name="username",
            field=models.CharField(
                max_length=150,
                unique=True,
                validators=[accounts.usernames.validate_username],
            ),
        ),
        migrations.AddConstraint(
            model_name="apiuser",
            constraint=models.UniqueConstraint(
                Lower("username"),
                name="accounts_apiuser_username_ci_unique",
                violation_error_code="username_taken",
                violation_error_message=(
                    "This username is taken: usernames are unique regardless of case."
                ),
            ),
        ),
    ]
