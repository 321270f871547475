"""The code a FIM workload is made of: one module of templates per language.

``bench.fim_workload`` builds a Tabby request from a big file of one language; the file,
its snippets and the model's answer are filled in from that language's :class:`Code`.
Each language has templates (string.Template: `$noun`, `${Noun}`; `$$` is a dollar sign)
for a unit of code repeated to fill the prefix, the function the cursor is in (its head
ends the prefix, its tail starts the suffix), a declaration and a chunk of another file
for the snippets, and the model's answer.  Snippets use other words than the file, so
that none of them is already in the prefix (the gateway would skip it).

The templates live in their own modules (``python``, ``csharp``, ``java``, ``go``,
``javascript``) because they are long and only data; adding a language is one more module
and one more entry in ``bench.fim_workload.CODE``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    extension: str
    header: str
    unit: str
    cursor_head: str  # ends the prefix: the cursor is on a new, indented line of a body
    cursor_tail: str  # starts the suffix: the rest of that function
    declaration: str
    chunk: str
    answer: str  # the loop's body, the suffix typed again, a stop word, junk
