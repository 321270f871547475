"""The search box's syntax, read as PostgreSQL's ``websearch_to_tsquery`` reads it, and
written out for SQLite's FTS5.

The syntax: words are all required, ``"a phrase"`` is a phrase, ``or`` between two terms
makes alternatives (``a b or c`` is ``(a and b) or c``), ``-word`` and ``-"a phrase"``
exclude.  Everything else is text: ``AND``, ``NEAR``, ``*``, ``^``, ``:`` and parentheses
are no operators, and no input is an error.  ``parse_websearch`` follows PostgreSQL's
parser step by step, odd corners included (a leading or trailing ``or`` is a word,
``a:b`` is two words, ``a.b`` one), so that a query finds the same rows on both
databases.  What each term's words are is left to each database's tokenizer: FTS5 gets
every term as a quoted string, inside which nothing is an operator.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass

# Between terms PostgreSQL skips its own tsquery operators rather than refuse them.
_SKIPPED = frozenset("!&|()<")
# White space as PostgreSQL's parser sees it in a UTF-8 locale: not the no-break spaces
# (U+00A0, U+2007, U+202F) nor U+001C-U+001F and U+0085, which Python's isspace() counts.
_SPACES = frozenset(
    "\t\n\v\f\r \u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2008\u2009\u200a\u2028\u2029\u205f\u3000"
)
# What FTS5's unicode61 tokenizer makes words of (its default "categories").
_WORD_CATEGORIES = frozenset(("Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "No", "Co"))


@dataclass(frozen=True)
class Term:
    """A word or a quoted phrase: its words, in this order, side by side."""

    text: str
    excluded: bool = False  # -word


class _Operator(enum.Enum):
    NOT = "-"
    OR = "or"


# A query: the rows that any group finds, a group finding the rows that satisfy all its
# terms.  No group: nothing is found (PostgreSQL's "query doesn't contain lexemes").
Groups = tuple[tuple[Term, ...], ...]


@dataclass(frozen=True)
class Fts5Query:
    """A query for FTS5: the rows ``matching`` finds, and for each of ``lacking`` the rows
    it does not find.  FTS5's NOT only subtracts from something found, while ``-word``
    alone finds every row without the word, on PostgreSQL as here."""

    matching: str | None
    lacking: tuple[str, ...] = ()

    @property
    def finds_nothing(self) -> bool:
        return self.matching is None and not self.lacking


def to_fts5(query: str) -> Fts5Query:
    """The query as FTS5 MATCH expressions, which FTS5 accepts whatever ``query`` was."""
    matching: list[str] = []
    lacking: list[str] = []
    for group in parse_websearch(query):
        required = [_fts5_string(term) for term in group if not term.excluded]
        excluded = [_fts5_string(term) for term in group if term.excluded]
        if not required:
            lacking.append(" OR ".join(excluded))
        elif excluded:
            matching.append(f"(({' AND '.join(required)}) NOT ({' OR '.join(excluded)}))")
        else:
            matching.append(f"({' AND '.join(required)})")
    return Fts5Query(" OR ".join(matching) or None, tuple(lacking))


def parse_websearch(query: str) -> Groups:
    """The query's groups and terms, as ``websearch_to_tsquery`` finds them."""
    groups: list[list[Term]] = [[]]
    negations = 0
    for token in _tokens(query.replace("\0", " ")):
        if token is _Operator.NOT:
            negations += 1
        elif token is _Operator.OR:
            groups.append([])
        else:
            # A term without words vanishes, and with it its "-" (and an "or" left with
            # nothing on one side): PostgreSQL drops such stop words from the query.
            if _has_words(token):
                groups[-1].append(Term(token, excluded=negations % 2 == 1))
            negations = 0
    return tuple(tuple(group) for group in groups if group)


def _tokens(query: str) -> list[str | _Operator]:
    """Terms' texts and the operators; the AND between terms goes without saying."""
    tokens: list[str | _Operator] = []
    at, end = 0, len(query)
    wants_term = True
    while at < end:
        char = query[at]
        if wants_term and char == "-":
            tokens.append(_Operator.NOT)
            at += 1
        elif wants_term and char == '"':
            close = query.find('"', at + 1)
            close = end if close < 0 else close  # an unclosed quote runs to the end
            tokens.append(query[at + 1 : close])
            at, wants_term = close + 1, False
        elif char in _SKIPPED or char in _SPACES:
            at += 1
        elif wants_term:
            word_end = at + 1
            while word_end < end and not _ends_word(query[word_end]):
                word_end += 1
            tokens.append(query[at:word_end])
            at, wants_term = word_end, False
        elif _or_operator_at(query, at):
            tokens.append(_Operator.OR)
            at, wants_term = at + 2, True
        else:
            wants_term = True  # the next term, after an implicit AND
    return tokens


def _ends_word(char: str) -> bool:
    # A colon too: PostgreSQL reads "a:b" as "a" and ":b" (two terms, not a phrase).
    return char in _SPACES or char in _SKIPPED or char in '":'


def _or_operator_at(query: str, at: int) -> bool:
    """Whether the "or" at ``at`` is the operator: not part of a word ("order", "or_b",
    "or-b"), and followed by something besides white space (else it is the word)."""
    if query[at : at + 2].lower() != "or":
        return False
    after = query[at + 2 : at + 3]
    if not after or after in "-_" or after.isalpha() or after.isdigit():
        return False
    # PostgreSQL looks for the operand from the second character after "or" on.
    return any(char not in _SPACES for char in query[at + 3 :])


def _has_words(text: str) -> bool:
    """Whether FTS5's unicode61 tokenizer finds a word in ``text``: letters, digits and
    private-use characters make words, anything else separates them."""
    return any(unicodedata.category(char) in _WORD_CATEGORIES for char in text)


def _fts5_string(term: Term) -> str:
    # Within double quotes FTS5 reads no operator, column filter or prefix mark: the
    # tokenizer splits the text into the phrase's words.
    return '"' + term.text.replace('"', '""') + '"'
