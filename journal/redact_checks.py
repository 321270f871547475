"""System checks for the secret masking settings (``kodify.E032``, ``kodify.W032``).

A pattern file that cannot be read, or a line that is not a valid regex, would leave
secrets unmasked without a word; ``manage.py check`` and start-up say so instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from journal.redact import builtin_detectors, read_extra


@register()
def redact_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    path = settings.KODIFY_JOURNAL_REDACT_EXTRA
    if path:
        _, found = read_extra(Path(path))
        for problem in found:
            where = f"line {problem.line} of " if problem.line else ""
            problems.append(
                Error(
                    f"KODIFY_JOURNAL_REDACT_EXTRA: {where}{path} {problem.message}, so its "
                    "secrets are not masked in the journal.",
                    id="kodify.E032",
                )
            )
    skipped = {name.strip() for name in settings.KODIFY_JOURNAL_REDACT_SKIP or ()} - {""}
    # Only when there is something to compare: the detectors load detect-secrets (20 MB
    # that a server process otherwise leaves to the journal's helper).
    unknown = sorted(skipped - {d.name for d in builtin_detectors()}) if skipped else []
    if unknown:
        problems.append(
            Warning(
                f"KODIFY_JOURNAL_REDACT_SKIP: no built-in detector is named "
                f"{', '.join(unknown)}; the console's journal help page lists them.",
                id="kodify.W032",
            )
        )
    return problems
