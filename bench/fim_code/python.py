"""The FIM workload's templates for Python: a service module of records and a cached client."""

from __future__ import annotations

from bench.fim_code import Code

PYTHON = Code(
    extension="py",
    header='''\
"""The $area service: $noun records and their reports."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from acme.$area.client import ${Noun}Client
from acme.$area.models import $Noun

logger = logging.getLogger(__name__)
''',
    unit='''

class $Noun$Kind:
    """${Verb}s $noun records for the $area service, with a small cache."""

    def __init__(self, client: ${Noun}Client, *, retries: int = $n) -> None:
        self.client = client
        self.retries = retries
        self._cache: dict[str, $Noun] = {}

    def ${verb}_$noun(self, ${noun}_id: str) -> $Noun | None:
        if ${noun}_id in self._cache:
            return self._cache[${noun}_id]
        for attempt in range(self.retries):
            try:
                found = self.client.get_$noun(${noun}_id, timeout=$n)
            except TimeoutError:
                logger.warning("timeout on %s, attempt %d", ${noun}_id, attempt)
                continue
            self._cache[${noun}_id] = found
            return found
        return None


def ${verb}_all_${noun}s(items: list[$Noun], limit: int = $n) -> list[str]:
    result = []
    for item in items[:limit]:
        if item.$field is None:
            continue
        result.append(f"{item.name}={item.$field}")
    return result
''',
    cursor_head='''

def summarize_${noun}s(records: list[$Noun], threshold: float) -> dict[str, float]:
    """Totals per $field of the records above ``threshold``."""
    totals: dict[str, float] = {}
    for record in records:
        ''',
    cursor_tail="""
    return totals

""",
    declaration="""\
@dataclass
class $Noun:
    id: str
    name: str
    $field: str | None = None
    value: float = 0.0
    created_at: datetime = field(default_factory=datetime.now)

    def is_recent(self, days: int = $n) -> bool:
        return datetime.now() - self.created_at < timedelta(days=days)
""",
    chunk="""\
def ${verb}_${noun}_batch(client: ${Noun}Client, ids: list[str]) -> list[$Noun]:
    found = []
    for chunk_start in range(0, len(ids), $n):
        batch = ids[chunk_start : chunk_start + $n]
        found.extend(client.get_many(batch))
    logger.info("${verb}: %d of %d ${noun}s", len(found), len(ids))
    return [item for item in found if item.$field is not None]
""",
    answer="""if record.value < threshold:
            continue
        key = record.$field or "unknown"
        totals[key] = totals.get(key, 0.0) + record.value
    return totals


def summarize_everything(records):
    return {}
<|endoftext|>lorem ipsum dolor sit amet""",
)
