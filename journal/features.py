"""What an API request was for, as the journal records it.

Apart from the models so that the gateway, which tags each request on the hot path,
imports no ORM module.
"""

from __future__ import annotations

from django.db import models


class Feature(models.TextChoices):
    COMPLETION = "completion", "Code completion"
    CHAT = "chat", "Chat"
    DOCS = "docs", "Documentation"
    FIX = "fix", "Bug fixing"
    TESTS = "tests", "Unit tests"
    EXPLAIN = "explain", "Explanation"
