"""The X-Request-Id a client sent, beside Kodify's own id of the request.

Adding the column with a constant default is instant on PostgreSQL 11 and later (no
rewrite).  The index is partial: it holds only the rows of clients that sent an id, so
its build reads the table once (holding back the journal's inserts meanwhile, as
0003's does, which the writer rides out) and it costs the other inserts nothing.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("journal", "0003_entry_journal_answer_time"),
    ]

    operations = [
        migrations.AddField(
            model_name="entry",
            name="client_request_id",
            field=models.CharField(
                blank=True,
                default="",
                help_text="The X-Request-Id the client sent, kept when well-formed: echoed "
                "back to it and sent to the upstream.",
                max_length=128,
            ),
        ),
        migrations.AlterField(
            model_name="entry",
            name="request_id",
            field=models.CharField(
                help_text="Kodify's own id of the request: the X-Request-Id the client "
                "received, unless it sent its own.",
                max_length=32,
                unique=True,
            ),
        ),
        migrations.AddIndex(
            model_name="entry",
            index=models.Index(
                condition=models.Q(("client_request_id", ""), _negated=True),
                fields=["client_request_id"],
                name="journal_client_request_id",
            ),
        ),
    ]
