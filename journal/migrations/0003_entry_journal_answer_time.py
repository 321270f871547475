"""An index for the acceptance statistics: completions by time, with model and language.

A plain build: it holds back the journal's inserts while it runs (about 1.5 s per million
rows on a small machine), which the writer rides out by queueing and spooling, so nothing
is lost.  ``CREATE INDEX CONCURRENTLY`` would not block them, but it waits for every open
transaction, including those of replicas queued on kodify_migrate's advisory lock, which
wait in turn for this one: a deadlock.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("journal", "0002_search_index"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="entry",
            index=models.Index(
                condition=models.Q(("response_id", ""), _negated=True),
                fields=["created_at"],
                include=("response_id", "language", "model"),
                name="journal_answer_time",
            ),
        ),
    ]
