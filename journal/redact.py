"""Mask secrets in prompts and answers before the journal stores them.

Auditors read the journal; they must never read a live credential a developer pasted
into a prompt.  Every secret found is replaced by ``[REDACTED:<detector>]`` so that the
auditor still sees what kind of secret it was.

The catalogue is Yelp's detect-secrets (its regex-based plugins: AWS, GitHub, GitLab,
Slack, Stripe, JWT…; :mod:`journal.redact_detect_secrets`), so that new token formats
arrive with an upgrade of that package, plus Kodify's own detectors for what it lacks or
what its shape does not suit to masking (``KEY = "value"`` assignments, ``Authorization``
headers, whole PEM blocks, AWS secret keys without a keyword, Kodify's tokens, passwords
in URLs; :mod:`journal.redact_catalogue`).  Detectors are named;
``KODIFY_JOURNAL_REDACT_SKIP`` turns built-in ones off, ``KODIFY_JOURNAL_REDACT_EXTRA``
adds patterns from a file.

Speed matters: this runs in the journal writer's thread, beside the proxy, on prompts of
tens of kilobytes.  Python's regex engine is quick only where a pattern starts with a
literal (it then skips ahead to it); one alternation of all patterns, or a pattern that
starts with a class or a case-insensitive keyword, costs tens of nanoseconds at every
character.  So each pattern says how it is found cheaply: by its literal start (most
token formats), by keywords looked up with ``str.find`` in the lower-cased text, by
a cheaper pattern for a part it must contain, or by a function (AWS secret keys, which
have no literal at all: a pass over the text's bytes); the full pattern is tried only
there.

Request bodies are masked as JSON text.  A mask never cuts a JSON escape (``\\n``,
``\\"``, ``\\u00e9``) in half and never contains a quote or backslash, so masked JSON stays
valid JSON; patterns accept ``\\"`` quotes and ``\\n`` line ends for the same reason.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from journal.redact_catalogue import (
    KODIFY_DETECTORS,
    Detector,
    ExtraProblem,
    Rule,
    read_extra,
)
from journal.redact_detect_secrets import detect_secrets_detectors

# The masking's public face: callers and the system checks import these from here.
__all__ = [
    "KODIFY_DETECTORS",
    "MARK",
    "Detector",
    "ExtraProblem",
    "Rule",
    "builtin_detectors",
    "detect_secrets_detectors",
    "detectors",
    "read_extra",
    "redact",
    "reset",
]

logger = logging.getLogger(__name__)

MARK = "[REDACTED:{}]"


# -- the built-in set --------------------------------------------------------------------

_BY_CONTEXT = ("authorization", "assignment")


def builtin_detectors() -> tuple[Detector, ...]:
    # Where two find the same secret, the first names it.  A token's format says more
    # than the place it stood in (a GitHub token given to ``token =``), so the detectors
    # that go by context come last; Kodify's formats come before detect-secrets' ones
    # (``url_password`` before ``basic_auth``).
    formats = tuple(d for d in KODIFY_DETECTORS if d.name not in _BY_CONTEXT)
    context = tuple(d for d in KODIFY_DETECTORS if d.name in _BY_CONTEXT)
    return formats + detect_secrets_detectors() + context


# -- compiled ----------------------------------------------------------------------------


class _Single:
    """One rule compiled, with its detector and its place in the order."""

    __slots__ = ("back", "detector", "finders", "group", "locate", "order", "regex", "scan")

    def __init__(self, detector: Detector, rule: Rule, order: int) -> None:
        self.detector = detector
        self.order = order
        self.regex = re.compile(rule.pattern)
        names = self.regex.groupindex
        self.group: int | str = "secret" if "secret" in names else (1 if self.regex.groups else 0)
        # Where matches may start, found in the lower-cased text.
        self.finders = [re.compile(re.escape(anchor)) for anchor in rule.anchors]
        self.finders += [re.compile(f"(?:{word})s?(?![a-z0-9_])") for word in rule.words]
        self.scan = re.compile(rule.scan) if rule.scan else None
        self.back = rule.back
        self.locate = rule.locate

    def may_match(self, text: str, lower: str | None) -> bool:
        """False when this rule cannot match anywhere: one C-level search, so that the
        common case (nothing secret in the text) costs little per rule."""
        if self.locate is not None:
            return True  # where it may match is found once, in starts()
        if self.finders and lower is not None:
            return any(finder.search(lower) is not None for finder in self.finders)
        if self.scan is not None:
            return self.scan.search(text) is not None
        return self.regex.search(text) is not None

    def starts(self, text: str, lower: str | None) -> Iterator[int]:
        """Positions where a match may start, in order (with repeats)."""
        if self.locate is not None:
            yield from self.locate(text)
        elif self.finders and lower is not None:
            hits = {found.start() for finder in self.finders for found in finder.finditer(lower)}
            for at in sorted(hits):
                yield from range(max(at - self.back, 0), at + 1)
        elif self.scan is not None:
            for hit in self.scan.finditer(text):
                yield from range(max(hit.start() - self.back, 0), hit.start() + 1)

    def find(self, text: str, lower: str | None) -> Iterator[tuple[int, int, int]]:
        """(secret start, order, secret end) of every secret kept."""
        searched = not self.finders and self.scan is None and self.locate is None
        if searched or (self.finders and lower is None):
            starts: Iterable[int] = self._searched(text)
        else:
            starts = self.starts(text, lower)
        done = 0
        for start in starts:
            if start < done:
                continue
            match = self.regex.match(text, start)
            if match is None or match.end() == start:
                continue
            span = self._secret(match)
            if span is not None:
                yield span[0], self.order, span[1]
                done = match.end()

    def _searched(self, text: str) -> Iterator[int]:
        search = self.regex.search
        pos = 0
        while (match := search(text, pos)) is not None:
            yield match.start()
            pos = match.start() + 1

    def _secret(self, match: re.Match[str]) -> tuple[int, int] | None:
        group = self.group
        if group == "secret" and match["secret"] is None and "bare" in self.regex.groupindex:
            group = "bare"
        start, end = match.span(group)
        if start < 0 or start == end:
            return None
        accept = self.detector.accept
        if accept is not None and not accept(match.string[start:end], match):
            return None
        return _safe_span(match.string, start, end, self.detector.extend)


# Something every built-in detector's match contains, in the lower-cased text: a keyword
# (the context detectors, PEM blocks, URLs with credentials) or a run of 16 token
# characters (every token format is at least that long).  One search in C; a text
# without either, like most short chat turns and answers, skips the detectors.  Patterns
# from KODIFY_JOURNAL_REDACT_EXTRA are unknown to it, so with them the gate is off.
_GATE = re.compile(
    r"-----begin|putty-user-key|://|pass|pwd|secret|key|token|auth|credential|bearer"
    r"|[a-z0-9_+/=.\-]{16}"
)


class _Compiled:
    def __init__(self, detectors: Sequence[Detector], *, gated: bool = True) -> None:
        self.gate = _GATE if gated else None
        self.detectors = list(detectors)
        self.names: dict[int, str] = {}
        self.singles = [
            _Single(d, rule, order)
            for order, (d, rule) in enumerate((d, r) for d in detectors for r in d.rules)
        ]
        self.names = {single.order: single.detector.name for single in self.singles}


def _settings_extra() -> list[Detector]:
    path = settings.KODIFY_JOURNAL_REDACT_EXTRA
    if not path:
        return []
    found, problems = read_extra(Path(path))
    for problem in problems:  # the system check (kodify.E032) says so at start-up
        where = f"line {problem.line}" if problem.line else "the file"
        logger.warning("KODIFY_JOURNAL_REDACT_EXTRA %s: %s %s", path, where, problem.message)
    return found


def _build() -> _Compiled:
    skip = {name.strip() for name in settings.KODIFY_JOURNAL_REDACT_SKIP or ()}
    chosen = [d for d in builtin_detectors() if d.name not in skip]
    extra = _settings_extra()
    return _Compiled([*chosen, *extra], gated=not extra)


_lock = threading.Lock()
_compiled: _Compiled | None = None


def _current() -> _Compiled:
    global _compiled
    compiled = _compiled
    if compiled is None:
        with _lock:
            if _compiled is None:
                _compiled = _build()
            compiled = _compiled
    return compiled


def reset() -> None:
    """Forget the compiled set: the next call reads the settings again."""
    global _compiled
    with _lock:
        _compiled = None


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("KODIFY_JOURNAL_REDACT_SKIP", "KODIFY_JOURNAL_REDACT_EXTRA"):
        reset()


setting_changed.connect(_on_setting_changed)


def detectors() -> list[tuple[str, str]]:
    """(name, description) of every detector in use, for the console's help page."""
    return [(d.name, d.description) for d in _current().detectors]


# -- masking -----------------------------------------------------------------------------

_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
# What a pattern may take in around a secret: separators before it, quotes after it.
_TRIM_START = " \t\r\n\"'`=:,"
_TRIM_END = " \t\r\n\"'`,"


def _escape_around(text: str, index: int) -> tuple[int, int] | None:
    """The JSON-style escape (``\\x`` or ``\\uXXXX``) that covers ``index``, if any."""
    at = text.rfind("\\", max(index - 5, 0), index + 1)
    if at < 0:
        return None
    run = at
    while run > 0 and text[run - 1] == "\\":
        run -= 1
    if (at - run) % 2:  # an even run: ``at`` is the escaped half of ``\\``
        return (at - 1, at + 1) if at == index else None
    end = at + (6 if text.startswith("u", at + 1) else 2)
    return (at, end) if index < end else None


def _safe_span(text: str, start: int, end: int, extend: bool) -> tuple[int, int]:
    """Widen or narrow a secret's span so that its mask keeps JSON and quotes intact."""
    while start < end and text[start] in _TRIM_START:
        start += 1
    while end > start and text[end - 1] in _TRIM_END:
        end -= 1
    if extend:
        while end < len(text) and text[end] in _TOKEN_CHARS:
            end += 1
    if start < end:
        covering = _escape_around(text, start)
        if covering is not None:
            start = covering[0]
        covering = _escape_around(text, end - 1)
        if covering is not None:
            end = covering[1]
    return start, end


def redact(text: str) -> tuple[str, int]:
    """``text`` with every secret found replaced by ``[REDACTED:<detector>]``, and how
    many were replaced."""
    compiled = _current()
    lower: str | None = text.lower()
    if compiled.gate is not None and compiled.gate.search(lower) is None:  # type: ignore[arg-type]
        return text, 0
    if len(lower or "") != len(text):  # a few letters grow when lower-cased: positions move
        lower = None
    found = [
        hit
        for single in compiled.singles
        if single.may_match(text, lower)
        for hit in single.find(text, lower)
    ]
    if not found:
        return text, 0
    found.sort()
    pieces: list[str] = []
    done = count = 0
    for start, order, end in found:
        if end <= done:
            continue  # inside a secret already masked (a token in a password's value)
        start = max(start, done)
        pieces.append(text[done:start])
        pieces.append(MARK.format(compiled.names[order]))
        done = end
        count += 1
    pieces.append(text[done:])
    return "".join(pieces), count
