"""Building the fill-in-the-middle prompt for one autocompletion request.

The editor sends the code before and after the cursor and, from Tabby clients, snippets
of other files (declarations of the symbols near the cursor, code from recently changed
or opened files, the clipboard).  The prompt gets, in this order: the snippets as
comments in the file's language (the most relevant one last, nearest the code), then the
prefix, then the model family's FIM layout around prefix and suffix.  Each part has a
character budget; what is kept is always what lies nearest the cursor.

Runs on the event loop for every keystroke-triggered request, so it works with string
slicing and ``str.find`` only: a 20 KB prefix costs a few microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.fim.languages import Language
from gateway.fim.profiles import FimProfile

# The cursor is mid-line when a word character follows it on its line: then only the
# rest of that line is worth completing (the editor would not show a block there).
_WORD = re.compile(r"\w")


@dataclass(slots=True)
class Snippet:
    filepath: str
    body: str
    kind: str = "snippet"  # declaration | changed_file | recent_file | clipboard

    def as_dict(self) -> dict[str, str]:
        return {"filepath": self.filepath, "body": self.body, "kind": self.kind}


@dataclass(slots=True)
class Segments:
    """The editor's view of the cursor (Tabby's ``segments``), CRLF or not."""

    prefix: str
    suffix: str = ""
    filepath: str = ""
    git_url: str = ""
    # In priority order: declarations, then changed files, recent files, the clipboard.
    snippets: list[Snippet] = field(default_factory=list)


@dataclass(slots=True)
class FimPrompt:
    prompt: str
    prefix: str  # the prefix as it went into the prompt ("\n" line endings)
    suffix: str
    single_line: bool
    crlf: bool  # the file uses CRLF: the completion goes back with CRLF too
    snippets: list[Snippet]  # those that fitted


def is_single_line(suffix: str) -> bool:
    end = suffix.find("\n")
    rest = suffix if end == -1 else suffix[:end]
    return bool(rest) and _WORD.search(rest) is not None


def build_prompt(
    segments: Segments,
    *,
    profile: FimProfile,
    language: Language,
    use_context: bool = True,
    context_tokens: int | None = None,
) -> FimPrompt:
    """The prompt for ``segments``; ``context_tokens`` is the model's context window."""
    prefix, suffix = segments.prefix, segments.suffix
    budget = profile.budget.within(context_tokens, profile.max_tokens)
    # "\r" is found (or not) at memchr speed; only files that have one pay for the rest.
    crlf = ("\r" in prefix and "\r\n" in prefix) or ("\r" in suffix and "\r\n" in suffix)
    if crlf:
        # Twice the budget is ample: CRLF shrinks the text by at most half.
        prefix = prefix[-2 * budget.prefix_chars :].replace("\r\n", "\n")
        suffix = suffix[: 2 * budget.suffix_chars].replace("\r\n", "\n")
    prefix = keep_tail(prefix, budget.prefix_chars)
    suffix = keep_head(suffix, budget.suffix_chars) if profile.uses_suffix else ""
    snippets: list[Snippet] = []
    context = ""
    if use_context and segments.snippets and budget.context_chars > 0:
        context, snippets = render_context(
            segments.snippets,
            profile=profile,
            language=language,
            prefix=prefix,
            suffix=suffix,
            limit=budget.context_chars,
        )
    return FimPrompt(
        prompt=profile.render(context + prefix, suffix),
        prefix=prefix,
        suffix=suffix,
        single_line=is_single_line(suffix if profile.uses_suffix else segments.suffix),
        crlf=crlf,
        snippets=snippets,
    )


def keep_tail(text: str, limit: int) -> str:
    """The end of ``text`` within ``limit`` characters, starting at a line when it can."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    newline = text.find("\n", cut)
    # One enormous last line (minified code): cut inside it rather than lose it all.
    return text[newline + 1 :] if newline != -1 and newline + 1 < len(text) else text[cut:]


def keep_head(text: str, limit: int) -> str:
    """The start of ``text`` within ``limit`` characters, ending at a line when it can."""
    if len(text) <= limit:
        return text
    newline = text.rfind("\n", 0, limit)
    return text[: newline + 1] if newline > 0 else text[:limit]


def render_context(
    candidates: list[Snippet],
    *,
    profile: FimProfile,
    language: Language,
    prefix: str,
    suffix: str,
    limit: int,
) -> tuple[str, list[Snippet]]:
    """The snippets that fit in ``limit`` characters, rendered, most relevant last."""
    style = profile.context
    remaining = limit
    chosen: list[tuple[Snippet, str]] = []
    seen: set[str] = set()
    for snippet in candidates:
        if len(chosen) >= style.max_snippets:
            break
        if snippet.kind == "clipboard" and not style.clipboard:
            continue
        body = snippet.body.replace("\r\n", "\n").strip("\n")
        key = body.strip()
        # The model already sees what is in the file itself.
        if not key or key in seen or key in prefix or key in suffix:
            continue
        seen.add(key)
        text = _render_one(snippet.filepath, body, profile=profile, language=language)
        if len(text) > remaining:
            continue  # a smaller, less relevant snippet may still fit
        remaining -= len(text)
        chosen.append((snippet, text))
    chosen.reverse()
    return "".join(text for _, text in chosen), [snippet for snippet, _ in chosen]


def _render_one(filepath: str, body: str, *, profile: FimProfile, language: Language) -> str:
    style = profile.context
    if style.style == "template":
        return style.snippet_template.replace("{filepath}", filepath).replace("{body}", body)
    header = style.header.replace("{filepath}", filepath) if filepath else "Clipboard:"
    return language.comment_lines(f"{header}\n{body}\n") + "\n"
