"""The journal: one row per API request, and the Tabby completion events.

The journal may live in a database of its own (``LOGS_DB_*``, see ``journal/router.py``),
so it holds no foreign key into the main database: user and token are kept as ids plus
the user name as it was at the time, which is also what an auditor wants to read.

Indexes follow the console's filters: each filterable column is indexed together with
the list's order (``created_at``, ``id``), so a filtered page is one short index scan at
any size.  Full-text search uses a GIN index that only PostgreSQL gets (migration 0002).
"""

from __future__ import annotations

from django.db import models

from journal.features import Feature


class Entry(models.Model):
    """One API request as the gateway saw it, secrets already masked."""

    created_at = models.DateTimeField(help_text="When the request arrived.")
    request_id = models.CharField(
        max_length=32,
        unique=True,
        help_text="Kodify's own id of the request: the X-Request-Id the client received, "
        "unless it sent its own.",
    )
    # Not the key: clients reuse their ids, and one reused must not replace (or hide) a row.
    client_request_id = models.CharField(
        max_length=128,
        blank=True,
        default="",
        help_text="The X-Request-Id the client sent, kept when well-formed: echoed back to "
        "it and sent to the upstream.",
    )
    user_id = models.BigIntegerField(null=True, blank=True)
    username = models.CharField(max_length=150, blank=True)
    token_id = models.BigIntegerField(null=True, blank=True)
    auth_mode = models.CharField(max_length=16, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    client_name = models.CharField(max_length=64, blank=True)
    client_version = models.CharField(max_length=64, blank=True)
    endpoint = models.CharField(max_length=64)
    feature = models.CharField(max_length=16, choices=Feature.choices)
    model = models.CharField(max_length=200, blank=True)
    upstream = models.CharField(max_length=300, blank=True)
    language = models.CharField(max_length=32, blank=True)
    stream = models.BooleanField(default=False)
    request_body = models.TextField(blank=True)
    response_text = models.TextField(blank=True)
    response_id = models.CharField(
        max_length=64, blank=True, help_text="The answer's id (Tabby events refer to it)."
    )
    prompt_tokens = models.IntegerField(null=True, blank=True)
    completion_tokens = models.IntegerField(null=True, blank=True)
    status = models.SmallIntegerField(help_text="HTTP status sent to the client.")
    error = models.TextField(blank=True)
    ttft_ms = models.FloatField(null=True, blank=True, help_text="Time to first token.")
    latency_ms = models.FloatField(help_text="Time until the last byte (or the cancel).")
    cancelled = models.BooleanField(default=False, help_text="The client went away first.")
    redactions = models.IntegerField(default=0, help_text="Secrets masked before storage.")
    truncated = models.BooleanField(default=False, help_text="A text was cut to the limit.")

    class Meta:
        verbose_name = "journal entry"
        verbose_name_plural = "journal entries"
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["created_at", "id"], name="journal_time"),
            models.Index(fields=["user_id", "created_at"], name="journal_user_time"),
            # Names that are no (longer an) API user, and the dummy and one-token modes.
            models.Index(fields=["username", "created_at"], name="journal_username_time"),
            models.Index(fields=["model", "created_at"], name="journal_model_time"),
            models.Index(fields=["endpoint", "created_at"], name="journal_endpoint_time"),
            models.Index(fields=["feature", "created_at"], name="journal_feature_time"),
            models.Index(fields=["status", "created_at"], name="journal_status_time"),
            models.Index(fields=["client_name", "created_at"], name="journal_client_time"),
            models.Index(fields=["response_id"], name="journal_response_id"),
            # A request looked up by the id its client chose (most clients send none).
            models.Index(
                fields=["client_request_id"],
                condition=~models.Q(client_request_id=""),
                name="journal_client_request_id",
            ),
            # The dashboards join a period's Tabby events to their rows for the model and
            # the language; this lets them read those from the index, not the wide rows.
            models.Index(
                fields=["created_at"],
                include=["response_id", "language", "model"],
                condition=~models.Q(response_id=""),
                name="journal_answer_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.endpoint} {self.status}"


class EventKind(models.TextChoices):
    VIEW = "view", "Shown"
    SELECT = "select", "Accepted"
    DISMISS = "dismiss", "Dismissed"


class Event(models.Model):
    """A Tabby completion event (``POST /v1/events``): was a completion shown, accepted…"""

    created_at = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    response_id = models.CharField(max_length=64, blank=True)
    choice_index = models.IntegerField(null=True, blank=True)
    user_id = models.BigIntegerField(null=True, blank=True)
    username = models.CharField(max_length=150, blank=True)
    client_name = models.CharField(max_length=64, blank=True)
    language = models.CharField(max_length=32, blank=True)
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["created_at", "kind"], name="journal_event_time"),
            models.Index(fields=["response_id"], name="journal_event_response"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.response_id}"


class Granularity(models.TextChoices):
    HOUR = "h", "Hour"
    DAY = "d", "Day"


class RollupCounts(models.Model):
    """The journal counted per period, one dimension at a time: an hour
    (:class:`HourlyRollup`) or a day (:class:`DailyRollup`).

    Kept up to date by whatever stores journal rows and events (``journal/rollups.py``),
    in the same transaction, so the dashboards read a few thousand of these instead of
    the period's rows.  ``dimension`` is ``all`` (``value`` empty) or one of the columns
    the dashboards break down by; a request counts once in every dimension.  Days and
    hours live in tables of their own: a year of days is then a short, dense read, not
    one row in every page of the hours.
    """

    period_start = models.DateTimeField()
    dimension = models.CharField(max_length=16)
    value = models.CharField(max_length=300, blank=True)
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0, help_text="Answered with a status ≥ 400.")
    cancelled = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    ttft_count = models.BigIntegerField(default=0)
    ttft_sum = models.FloatField(default=0)
    latency_sum = models.FloatField(default=0)
    # Completions (not events) shown, accepted and dismissed, counted at their first
    # event of that kind.
    shown = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    dismissed = models.BigIntegerField(default=0)

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                # Dimension before time: the dashboards read one dimension's range.
                fields=["dimension", "period_start", "value"],
                name="%(app_label)s_%(class)s_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.period_start:%Y-%m-%d %H:%M} {self.dimension}={self.value}"


class HourlyRollup(RollupCounts):
    class Meta(RollupCounts.Meta):
        pass


class DailyRollup(RollupCounts):
    class Meta(RollupCounts.Meta):
        pass


class TimingHistogram(models.Model):
    """How many requests of a period took about so long: a histogram per hour
    (:class:`HourlyTiming`) and day (:class:`DailyTiming`), overall (``dimension``
    ``all``) and per model, that percentiles are read from."""

    period_start = models.DateTimeField()
    dimension = models.CharField(max_length=16)
    value = models.CharField(max_length=300, blank=True)
    metric = models.CharField(max_length=8)  # "ttft" or "latency"
    bucket = models.SmallIntegerField()
    count = models.BigIntegerField(default=0)

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["dimension", "period_start", "value", "metric", "bucket"],
                name="%(app_label)s_%(class)s_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.metric} {self.dimension}={self.value} #{self.bucket}: {self.count}"


class HourlyTiming(TimingHistogram):
    class Meta(TimingHistogram.Meta):
        pass


class DailyTiming(TimingHistogram):
    class Meta(TimingHistogram.Meta):
        pass


# Each granularity's tables.
ROLLUPS: dict[str, type[HourlyRollup] | type[DailyRollup]] = {
    Granularity.HOUR: HourlyRollup,
    Granularity.DAY: DailyRollup,
}
TIMINGS: dict[str, type[HourlyTiming] | type[DailyTiming]] = {
    Granularity.HOUR: HourlyTiming,
    Granularity.DAY: DailyTiming,
}


class CompletionFate(models.Model):
    """That a completion was shown, accepted or dismissed: once per completion and kind,
    however many events said so, which is what the rollups count.

    Its model (and its language, when the event did not name one) come from the journal
    row, which may be stored after the event (another process's writer): the flags say
    what was counted already, and storing the row counts the rest.
    """

    response_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    created_at = models.DateTimeField(help_text="The first event of this kind.")
    language = models.CharField(max_length=32, blank=True)
    model_counted = models.BooleanField(default=False)
    language_counted = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["response_id", "kind"], name="journal_fate_key")
        ]
        indexes = [models.Index(fields=["created_at"], name="journal_fate_time")]

    def __str__(self) -> str:
        return f"{self.kind} {self.response_id}"
