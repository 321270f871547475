"""Clean up the text a code model generated for a fill-in-the-middle completion.

Small code models, given the code before and after the cursor, rarely stop where an
editor's inline suggestion should: they run past the end of the block into the next
definition, type again the code that already follows the cursor, loop on one line until
the token limit, or leak their own special tokens.  Shown as is, such a suggestion is
worse than none, so every completion passes through :func:`postprocess` first.

Every step keeps a leading part of the model's text and drops the rest, never rewriting
it: what the user sees is always something the model wrote, only shorter.  The prefix
may be a whole file and the budget is a fraction of a millisecond, so only the last few
lines before the cursor and the first few after it are ever read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.fim.languages import Language

__all__ = ["postprocess"]

_OPENING = {"(": ")", "[": "]", "{": "}"}
# A line made only of closing brackets and what may follow them: `}`, `});`, `],`, `))`.
_CLOSING_LINE = re.compile(r"[)\]}][)\]};,]*")
_WORD = re.compile(r"\w")
# Lines that legitimately come several times in a row, so they never count as a loop.
_ORDINARY_REPEATS = frozenset({"end", "fi", "done", "esac", "endif", "else", "begin"})
_QUOTES = "\"'`"

# Bounds on how far around the cursor the steps look, so that a huge file costs nothing.
_PREFIX_LINES = 40  # blank lines skipped looking up for the code above the cursor
_SUFFIX_LINES = 200  # lines of the suffix compared with the end of the completion
_LINE_CHARS = 400  # of the cursor's line, on each side of the cursor
_LOOP_BLOCK = 3  # the longest group of lines recognised as looping
_LOOP_TIMES = 3  # a line or group seen this many times in a row is a loop


@dataclass(frozen=True, slots=True)
class _Cursor:
    before: str  # the cursor's line up to the cursor
    after: str  # the cursor's line from the cursor on
    above: str | None  # the last non-blank line above the cursor's line


def postprocess(
    text: str,
    *,
    prefix: str,
    suffix: str,
    language: Language,
    single_line: bool,
    stop: Sequence[str] = (),
) -> str:
    """The completion to show, or "" when nothing useful remains.

    ``text`` is what the model generated between ``prefix`` and ``suffix`` (line ends
    already "\\n"); ``stop`` holds the model family's end and FIM tokens.  In order:

    1. cut at the first model token, then at the first language stop word (a blank
       line, a top-level keyword at the start of a line) once the code has begun, and
       in ``single_line`` mode at the first line break;
    2. cut at the first line that leaves the cursor's block (by indentation), keeping
       the line that closes a bracket opened at the cursor;
    3. cut a loop (a line or group of up to three lines three times in a row) after
       its first time, and drop a completion that only repeats the line above;
    4. drop the end that the suffix already starts with: whole lines at the same
       depth, or on the cursor's line the text (or excess closing brackets) before
       the rest of that line;
    5. strip trailing whitespace, but keep the model's line break or space before code
       that follows the cursor on its line.
    """
    raw = _cut_at_model_stops(text, stop)
    kept = _cut_at_language_stops(raw, language, single_line)
    if not kept.strip():
        return ""
    cursor = _cursor(prefix, suffix)
    if not single_line:
        kept = _limit_scope(kept, cursor, language)
    # After the scope: what is left may be nothing but the line above the cursor again.
    kept = _drop_loops(kept, cursor)
    kept = _drop_suffix_overlap(kept, cursor, suffix)
    return _finish(kept, raw, cursor, single_line)


def _cut_at_model_stops(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the model's first end or FIM token, which is never code."""
    end = len(text)
    for token in stop:
        if token:
            found = text.find(token, 0, end + len(token))
            if 0 <= found < end:
                end = found
    text = text[:end]
    # Cut off by the token limit in the middle of a special token: `…return x<|endof`.
    tail = text[-64:]
    for token in stop:
        if token[0] not in tail:
            continue
        for length in range(min(len(token) - 1, len(text)), 2, -1):
            if text.endswith(token[:length]):
                return text[:-length]
    return text


def _cut_at_language_stops(text: str, language: Language, single_line: bool) -> str:
    """``text`` up to the blank line or new top-level definition that ends the thought.

    A completion may start with line breaks (the cursor at the end of a line, the code
    going on below it), so stop words only count once the code itself has begun.
    """
    if single_line:
        newline = text.find("\n")
        return text if newline < 0 else text[:newline]
    start = len(text) - len(text.lstrip())
    end = len(text)
    for word in language.stop_words:
        found = text.find(word, start, end + len(word))
        if 0 <= found < end:
            end = found
    return text[:end]


def _cursor(prefix: str, suffix: str) -> _Cursor:
    line_start = prefix.rfind("\n") + 1
    line_end = suffix.find("\n")
    after = suffix if line_end < 0 else suffix[:line_end]
    return _Cursor(
        before=prefix[max(line_start, len(prefix) - _LINE_CHARS) :],
        after=after[:_LINE_CHARS],
        above=_line_above(prefix, line_start),
    )


def _line_above(prefix: str, line_start: int) -> str | None:
    """The last non-blank line of ``prefix`` ending before ``line_start``."""
    end = line_start - 1  # the newline before the cursor's line
    for _ in range(_PREFIX_LINES):
        if end < 0:
            return None
        start = prefix.rfind("\n", 0, end) + 1
        if not prefix[start:end].isspace() and start < end:
            return prefix[start:end]
        end = start - 1
    return None


def _indent(line: str) -> int:
    width = 0
    for char in line:
        if char == " ":
            width += 1
        elif char == "\t":
            width += 4
        else:
            break
    return width


def _is_code(stripped: str) -> bool:
    """Whether a stripped line says something, unlike `}`, `)` or `end`."""
    return _WORD.search(stripped) is not None and stripped.lower() not in _ORDINARY_REPEATS


def _drop_loops(text: str, cursor: _Cursor) -> str:
    """``text`` without the repetitions of a model caught in a loop.

    The line above the cursor is looked at too: a completion that only repeats it is a
    loop that began in the prefix.
    """
    lines = text.split("\n")
    seen = [(cursor.before + lines[0]).strip(), *(line.strip() for line in lines[1:])]
    # Whether `seen` starts with a line of the prefix, and whether that line was added
    # in front of the completion's (rather than being its first, empty, line).
    from_prefix = inserted = False
    if not cursor.before.strip():
        if cursor.above is not None:
            seen.insert(0, cursor.above.strip())
            from_prefix = inserted = True
    elif not lines[0].strip():
        from_prefix = True  # the completion starts a new line below the cursor's line
    if from_prefix:
        repeated = seen[0]
        others = [line for line in seen[1:] if line]
        if others and _is_code(repeated) and all(line == repeated for line in others):
            return ""
    said = [line for line in seen if line]
    if len(set(said)) == len(said):
        return text  # a loop repeats a line; most completions repeat none (the scan costs)
    for start, line in enumerate(seen):
        # A loop of `}` lines is how code ends; a loop that matters has code in it, and
        # could as well be said to start at its first line of code.
        if not _is_code(line):
            continue
        for size in range(1, _LOOP_BLOCK + 1):
            if start + size * (_LOOP_TIMES - 1) >= len(seen):
                break
            if seen[start + size] == line and _loops(seen, start, size):
                keep = start + size - int(inserted)
                return "\n".join(lines[:keep]) if keep > 0 else ""
    return text


def _loops(seen: list[str], start: int, size: int) -> bool:
    """Whether ``seen[start:start + size]`` comes ``_LOOP_TIMES`` times in a row.

    The last time may be cut short by the end of the text (the model hit its token
    limit while looping).
    """
    block = seen[start : start + size]
    for time in range(1, _LOOP_TIMES):
        at = start + time * size
        again = seen[at : at + size]
        if again == block:
            continue
        if time < _LOOP_TIMES - 1 or at + len(again) < len(seen) or not again[-1]:
            return False
        # The text ends inside the last repetition: all of it must match so far.
        *whole, last = again
        return whole == block[: len(whole)] and block[len(whole)].startswith(last)
    return True


def _block_opener(line: str, language: Language) -> str:
    """The bracket (or Python's colon) that ``line`` ends with, opening a block; or ""."""
    code = line.rstrip()
    comment = code.find(language.comment_start) if language.comment_start else -1
    for candidate in (code, code[:comment].rstrip() if comment > 0 else ""):
        if candidate:
            last = candidate[-1]
            if last in _OPENING or (last == ":" and language.indentation_blocks):
                return last
    return ""


def _limit_scope(text: str, cursor: _Cursor, language: Language) -> str:
    """``text`` up to the first line that leaves the block the cursor is in.

    The block is known from indentation: the cursor's line, one level deeper when the
    line above the cursor (or the cursor's line itself) opens a block.  The line that
    closes a block opened at the cursor is kept, since the code is unfinished without it.
    """
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    first = cursor.before + lines[0]
    above = cursor.above
    opener = ""
    if cursor.before.strip():
        level = _indent(cursor.before)
        opener = _block_opener(first, language)
    elif above is not None and _block_opener(above, language):
        level = _indent(above)
        opener = _block_opener(above, language)
    else:
        # On a blank line the cursor's column says little (the editor may not have
        # indented yet): the completion's own first line of code says where it is.
        code = next((line for line in (first, *lines[1:]) if line.strip()), None)
        if code is None:
            return text
        level = _indent(code)
    closing = _OPENING.get(opener, "")
    for number in range(1, len(lines)):
        line = lines[number]
        stripped = line.strip()
        if not stripped:
            continue
        indent = _indent(line)
        if indent > level or (indent == level and not opener):
            continue
        if indent == level:
            # Go and some brace styles put `case` at the level of its `switch {`.
            if closing == "}" and stripped.startswith(("case ", "default:", "default ")):
                continue
            if closing and stripped[0] == closing and _CLOSING_LINE.fullmatch(stripped):
                return "\n".join(lines[: number + 1])
        return "\n".join(lines[:number])
    return text


def _drop_suffix_overlap(text: str, cursor: _Cursor, suffix: str) -> str:
    """``text`` without its end when that end is what already follows the cursor."""
    if cursor.after.strip():
        return _drop_same_line_overlap(text, cursor)
    return _drop_line_overlap(text, cursor, suffix)


def _drop_line_overlap(text: str, cursor: _Cursor, suffix: str) -> str:
    """Whole lines at the end of ``text`` that the suffix's next lines repeat."""
    lines = text.split("\n")
    physical = [cursor.before + lines[0], *lines[1:]]
    # Only lines with some of the completion in them: not the cursor's line when the
    # completion starts below it.
    numbers = [number for number, line in enumerate(lines) if line.strip()]
    if not numbers:
        return text
    following = _following_lines(suffix, len(numbers))
    if not following:
        return text
    # Whether a line of the completion is that line of the suffix: same code, same depth.
    # The depth matters: the `}` of a block the completion opened is not the suffix's.
    keys = [(physical[number].strip(), _indent(physical[number])) for number in numbers]
    wanted = [(line.strip(), _indent(line)) for line in following]
    for position, key in enumerate(keys):
        if key == wanted[0] and keys[position:] == wanted[: len(keys) - position]:
            return "\n".join(lines[: numbers[position]])
    return text


def _following_lines(suffix: str, count: int) -> list[str]:
    """The first ``count`` non-blank lines of ``suffix`` after the cursor's line."""
    found: list[str] = []
    start = suffix.find("\n") + 1
    for _ in range(_SUFFIX_LINES):
        if start <= 0 or len(found) == count:
            break
        end = suffix.find("\n", start)
        line = suffix[start:] if end < 0 else suffix[start:end]
        if line.strip():
            found.append(line)
        start = end + 1
    return found


def _drop_same_line_overlap(text: str, cursor: _Cursor) -> str:
    """The end of ``text`` that the rest of the cursor's line starts with.

    `print(` + `foo())` + `)` has one `)` too many; `print(` + `foo()` + `)` does not,
    though it ends with the same `)`: brackets decide when the overlap is brackets.
    """
    rest = cursor.after.lstrip()
    body = text.rstrip()
    size = min(len(rest), len(body))
    while size and not body.endswith(rest[:size]):
        size -= 1
    if not size:
        return text
    kept = body[:-size]
    overlap = rest[:size].strip()
    before = _unmatched_closers(cursor.before + body + cursor.after)
    after = _unmatched_closers(cursor.before + kept + cursor.after)
    if after < before:
        return kept
    # Not brackets closing too much: words or punctuation typed a second time.
    if _unmatched_closers(overlap) == 0 and (len(overlap) >= 2 or overlap in {";", ","}):
        return kept
    return text


def _unmatched_closers(code: str) -> int:
    """How many closing brackets in ``code`` close nothing opened in it.

    String literals are skipped (roughly: a quote closes at the same quote or the end of
    the line), so that `")"` does not count.
    """
    depth = dict.fromkeys(_OPENING.values(), 0)
    unmatched = 0
    quote = ""
    escaped = False
    for char in code:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char in (quote, "\n"):
                quote = ""
        elif char in _QUOTES:
            quote = char
        elif char in _OPENING:
            depth[_OPENING[char]] += 1
        elif char in depth:
            if depth[char]:
                depth[char] -= 1
            else:
                unmatched += 1
    return unmatched


def _finish(kept: str, raw: str, cursor: _Cursor, single_line: bool) -> str:
    """``kept`` without trailing whitespace, except what separates it from the suffix.

    When code follows the cursor on its line, the model's own line break (or space) at
    the end of the completion is what keeps that code from being glued onto it.
    """
    body = "\n".join(line.rstrip() for line in kept.split("\n")).rstrip()
    if not body.strip():
        return ""
    if not cursor.after.strip():
        return body
    end = len(kept.rstrip())  # `kept` is a leading part of `raw`
    gap = raw[end : len(raw) - len(raw[end:].lstrip())]
    newlines = gap.count("\n")
    if single_line or not newlines:
        # `price + ` before `tax`; but `id ` before ` }` would make two spaces.
        return body if cursor.after[0].isspace() else body + gap.partition("\n")[0]
    # The line after the cursor was at the cursor's column; put it back there.
    indent = cursor.before if not cursor.before.strip() else gap[gap.rfind("\n") + 1 :]
    return body + "\n" * min(newlines, 2) + indent
