"""A replayable typing trace: developers writing code in their files, with an
autocompletion at every pause in typing and a chat now and then.

In each of their files a developer writes a new function, well into the file, a few
lines at a time: at each pause the editor asks for a Tabby completion of the file up to
the cursor (the prefix, which grows from pause to pause) and after it (the suffix).  They
go from file to file (a module, its tests…) every few pauses, so all their files stay in
use, and ask the chat about the code after each round.  Usually the developer waits for
the answer and reads it (``typed_on_after`` None, then ``think`` seconds); sometimes they
type on after ``typed_on_after`` seconds, before the answer came: nobody waits for that
one any more.

Everything is drawn from one seeded generator: the same arguments give the same trace,
texts and timings, so the configurations of a run replay the very same work.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

# What the code is made of: names that read like a project's.
_NOUNS = (
    "account", "order", "invoice", "customer", "payment", "report", "session", "token",
    "record", "batch", "window", "buffer", "cursor", "ledger", "tariff", "region",
)  # fmt: skip
_VERBS = (
    "load", "store", "check", "merge", "split", "render", "count", "filter", "update",
    "build", "parse", "apply", "close", "fetch", "match", "group",
)  # fmt: skip
CHAT_SYSTEM = (
    "You are the coding assistant of this company's developers. Answer briefly, with "
    "code where code helps, and say so when you are not sure. Prefer the standard "
    "library; follow the style of the code you are shown."
)


@dataclass(frozen=True)
class Completion:
    document: str
    prefix: str
    suffix: str
    typed_on_after: float | None  # None: the developer waits for the answer
    think: float  # seconds after the answer (or after typing on) until the next step

    def body(self) -> dict[str, Any]:
        """The Tabby completion request an editor sends."""
        return {
            "language": "python",
            "segments": {"prefix": self.prefix, "suffix": self.suffix, "filepath": self.document},
        }


@dataclass(frozen=True)
class Chat:
    messages: tuple[dict[str, str], ...]
    max_tokens: int
    think: float

    def body(self, model: str) -> dict[str, Any]:
        return {
            "model": model,
            "messages": list(self.messages),
            "max_tokens": self.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }


Step = Completion | Chat


@dataclass(frozen=True)
class Developer:
    name: str
    steps: tuple[Step, ...]


def _function(rng: random.Random, index: int) -> str:
    verb, noun, other = rng.choice(_VERBS), rng.choice(_NOUNS), rng.choice(_NOUNS)
    limit = rng.randint(2, 90)
    return (
        f"def {verb}_{noun}_{index}({noun}, {other}s, limit={limit}):\n"
        f'    """{verb.capitalize()} the {noun} against the {other}s, at most {limit}."""\n'
        f"    found = []\n"
        f"    for item in {other}s[:limit]:\n"
        f"        if item.{noun}_id == {noun}.id and item.{verb}ed:\n"
        f"            found.append(item)\n"
        f"    return found\n\n\n"
    )


def source_file(rng: random.Random, functions: int) -> str:
    header = "import itertools\nimport logging\n\nlog = logging.getLogger(__name__)\n\n\n"
    return header + "".join(_function(rng, i) for i in range(functions))


def typing_trace(
    *,
    developers: int = 4,
    files: int = 2,
    pauses: int = 6,
    burst: int = 3,
    functions: int = 10,
    typed_on_share: float = 0.35,
    chats: bool = True,
    seed: int = 0,
) -> list[Developer]:
    """``developers`` times ``files`` documents, ``pauses`` completions in each.

    A developer goes from file to file (a module, its tests…), typing ``burst`` pauses in
    one before the next, so that all their files stay in use; a chat after each round of
    their files.  A completion is typed over (not waited for) with probability
    ``typed_on_share``, never the last one of a burst: the one after it is for the same
    document."""
    rng = random.Random(seed)
    trace = []
    for d in range(developers):
        writing = []
        for f in range(files):
            text = source_file(rng, functions)
            cursor = text.index("def ", len(text) * 2 // 3)  # a new function, well in
            new = _function(rng, functions + 1) + _function(rng, functions + 2)
            writing.append((f"dev{d}/service_{f}.py", text, cursor, new))
        steps: list[Step] = []
        for first in range(1, pauses + 1, burst):
            last = min(first + burst - 1, pauses)
            for document, text, cursor, new in writing:
                for pause in range(first, last + 1):
                    typed = new[: len(new) * pause // (pauses + 1)]
                    typed_on = pause != last and rng.random() < typed_on_share
                    steps.append(
                        Completion(
                            document=document,
                            prefix=text[:cursor] + typed,
                            suffix=text[cursor:],
                            typed_on_after=round(rng.uniform(0.05, 0.2), 3) if typed_on else None,
                            think=round(rng.uniform(0.3, 1.0), 3),
                        )
                    )
            if chats:
                document, _, _, new = writing[(first // burst) % files]
                question = f"What does this code in {document} do?\n\n{new}"
                steps.append(
                    Chat(
                        messages=(
                            {"role": "system", "content": CHAT_SYSTEM},
                            {"role": "user", "content": question},
                        ),
                        max_tokens=32,
                        think=round(rng.uniform(0.3, 1.0), 3),
                    )
                )
        trace.append(Developer(name=f"dev{d}", steps=tuple(steps)))
    return trace
