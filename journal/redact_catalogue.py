"""What the journal's secret masking looks for: the shape of a detector, how a candidate
is judged, Kodify's own detectors, and extra patterns from a file.

Kodify's detectors cover what detect-secrets lacks or what its shape does not suit to
masking (``KEY = "value"`` assignments, ``Authorization`` headers, whole PEM blocks,
AWS secret keys without a keyword, Kodify's tokens, passwords in URLs, newer token
formats); :mod:`journal.redact_detect_secrets` brings in the rest.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from accounts.tokens import LOOKUP_LENGTH, SCHEME, SECRET_LENGTH

# Accepts the secret text of one match, with the match, or turns it down (a placeholder, a
# variable name): the regexes find candidates, these few lines keep them precise.
Accept = Callable[[str, re.Match[str]], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern, and where to try it.  The secret is its group ``secret`` (else
    ``bare``), else group 1, else the whole match.

    ``anchors``: lower-case texts every match contains, at most ``back`` characters after
    its start; ``words``: the same as patterns (each starting with a literal) that count
    only where a word ends, or after a plural s (most ``token`` in code is ``tokens``,
    ``token_id``, ``tokenizer``: the check runs inside the regex engine, not per hit in
    Python); ``scan``: a cheaper pattern every match contains, run on the text itself.
    With none of them, the pattern is searched as it is (quick when it starts with a
    literal).  ``locate``: a function that gives the positions where a match may start,
    for a pattern that could only be searched as it is and starts with a class (which
    costs tens of nanoseconds at every character).
    """

    pattern: str
    anchors: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    scan: str | None = None
    back: int = 0
    locate: Callable[[str], Iterable[int]] | None = None


@dataclass(frozen=True, slots=True)
class Detector:
    name: str
    description: str
    rules: tuple[Rule, ...]
    accept: Accept | None = None
    # Prefix-style token formats (``sk_live_`` + 24) also match the start of a longer
    # token; the mask then runs on to the end of the token so that no tail shows.
    extend: bool = False


# -- judging a candidate ----------------------------------------------------------------

# fmt: off
_PLACEHOLDERS = frozenset({
    "none", "null", "nil", "true", "false", "undefined", "empty", "string", "str", "bytes",
    "int", "required", "optional", "hidden", "redacted", "changeme", "change_me", "secret",
    "secrets", "password", "passwd", "pwd", "pass", "token", "tokens", "key", "apikey",
    "api_key", "example", "sample", "dummy", "placeholder", "test", "testing", "todo",
    "fixme", "default", "value", "auth", "bearer", "basic", "user", "username",
})
# fmt: on
_PLACEHOLDER_PREFIXES = ("your", "my_", "my-", "enter", "insert", "example", "dummy", "fake")
_PLACEHOLDER_STARTS = tuple("$%{<[#*@&")
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")
_REPEATED = re.compile(r"(.)\1*")
# Names of a password or key: any literal value is a secret.  The others (token, auth,
# credentials) also name harmless things (``eos_token = "</s>"``, ``token = 50256``,
# ``auth: "oauth2"``), so their values must look generated.
_STRONG = ("pass", "pwd", "secret", "key")


def _placeholder(value: str) -> bool:
    lower = value.lower()
    return (
        value.startswith(_PLACEHOLDER_STARTS)
        or "${" in value
        or "{{" in value
        or lower in _PLACEHOLDERS
        or lower.startswith(_PLACEHOLDER_PREFIXES)
        or _REPEATED.fullmatch(value) is not None
        or "..." in value
        or "\u2026" in value
        or "xxxx" in lower
    )


def _generated(value: str) -> bool:
    """Looks machine-made: digits among letters, or both cases over some length."""
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    if has_digit and has_alpha:
        return True
    return len(value) >= 12 and not value.islower() and not value.isupper() and has_alpha


def _accept_assignment(value: str, match: re.Match[str]) -> bool:
    if _placeholder(value):
        return False
    keyword = match["kw"]
    if match["q"] is None:  # unquoted: in code that is an expression, not a literal
        after = match.string[match.end() : match.end() + 1]
        if after in ("(", "[", "."):  # a call, an index, an attribute
            return False
        env_style = keyword.isupper() and match["op"] == "=" and not match["sp"]
        # A variable (``password = hashed``, ``password: userPassword``); an identifier
        # with digits in a YAML or .env file is a password all the same.
        variable = "." in value or not any(c.isdigit() for c in value)
        if not env_style and _IDENTIFIER.fullmatch(value) and variable:
            return False
    if keyword.lower().startswith(_STRONG):
        return len(value) >= 4
    return len(value) >= 8 and _generated(value) and not value.isdigit()


def accept_generated(value: str, match: re.Match[str]) -> bool:
    return not _placeholder(value) and _generated(value)


def _accept_url_password(value: str, match: re.Match[str]) -> bool:
    return not _placeholder(value)


_ALNUM_RUN = re.compile(r"[A-Za-z0-9]{16,}")


def _accept_sk_key(value: str, match: re.Match[str]) -> bool:
    """``sk-`` and a random part: a run of 16 letters and digits, mixed (or long, like a
    hex key), not words joined by hyphens (``sk-learn-…``) or a placeholder."""
    if _placeholder(value[3:]):
        return False
    return any(
        any(c.isdigit() for c in run)
        and not run.isdigit()
        and (len(run) >= 20 or not (run.islower() or run.isupper()))
        for run in _ALNUM_RUN.findall(value)
    )


# An AWS secret access key: 40 characters of base64 that stand alone.  A git SHA, a path
# or a long identifier can be 40 such characters too; a key has both cases and digits,
# letters beyond hex, and falls apart into many short pieces at its case and digit
# changes (a random one into 21, fewer than 11 once in 25,000 keys; AWS's documented
# example into 12; ``src/main/java/com/example/MyApplication2`` into 8 words).
_AWS_SECRET_LENGTH = 40
_HEX = re.compile(r"[0-9A-Fa-f]+")
_PIECES = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_MIN_PIECES = 11


# Where runs of 40 or more base64 characters start, for the pattern to judge there: found
# in bytes by two passes in C (a search by regex would try every character).  Encoded as
# ASCII, one byte for every character (an accented one becomes "?"), so that positions
# stay; base64 characters become "a", a backslash "b" (after a JSON escape such as
# ``\n`` the run starts with its letter), anything else a space.
def _runs_table() -> bytes:
    table = bytearray(b" " * 256)
    for char in string.ascii_letters + string.digits + "+/":
        table[ord(char)] = ord("a")
    table[ord("\\")] = ord("b")
    return bytes(table)


_BASE64_RUNS = _runs_table()
_RUN = b"a" * _AWS_SECRET_LENGTH
_RUN_END = re.compile(b"a*")
# JSON written by PHP or some Java libraries escapes "/" (``\/``), which cuts a key's
# run in pieces: a text with such escapes, rare, is searched by regex.
_ESCAPED_SLASH = re.compile(r"\\/")
_ESCAPED_RUN = re.compile(r"(?:[A-Za-z0-9+]|\\/){40,}")


def base64_runs(text: str) -> Iterator[int]:
    if _ESCAPED_SLASH.search(text) is not None:  # quicker than ``in`` for two characters
        for match in _ESCAPED_RUN.finditer(text):
            yield from (match.start(), match.start() + 1)
        return
    runs = text.encode("ascii", "replace").translate(_BASE64_RUNS)
    at = runs.find(_RUN)
    while at >= 0:
        yield at
        if at and runs[at - 1] == ord("b"):  # after \n, \t…: the escape's letter first
            yield at + 1
        found = _RUN_END.match(runs, at)
        at = runs.find(_RUN, found.end()) if found else -1


_DIGIT = re.compile("[0-9]")


def _accept_aws_secret(value: str, match: re.Match[str]) -> bool:
    if "\\" in value:
        value = value.replace("\\", "")
    one_case = value.lower() == value or value.upper() == value
    if one_case or _HEX.fullmatch(value) or not _DIGIT.search(value):
        return False  # one case only (or no letters); a git SHA, a digest; no digit
    return len(_PIECES.findall(value)) >= _MIN_PIECES


# -- the catalogue -----------------------------------------------------------------------

# A quote, or an escaped one inside a JSON string (thrice escaped: a string in code in
# a JSON document in a JSON string).
_QUOTE = r"""(?:\\{0,3}["'`])"""


def _not_after(chars: str, literal: str = "") -> str:
    """A lookbehind: what stands before ``literal`` (just matched) is none of ``chars``,
    or is the ``n``, ``r`` or ``t`` of a JSON escape (a token on a line of its own
    inside a JSON string follows ``\\n``)."""
    return rf"(?:(?<![{chars}]{literal})|(?<=\\[nrt]{literal}))"


# A match starts at the name's last word, so that the words can be looked up quickly:
# ``client_secret`` at ``secret``, ``api_key`` at ``key`` (which counts only after api,
# access, private or secret: the lookbehinds come after the literal, so that they are
# only tried where there is a ``key``).
_KEY = "key(?:{})".format(
    "|".join(
        f"(?<={owner}{sep}key)"
        for owner in ("api", "access", "private", "secret")
        for sep in ("", "_", "-")
    )
)
_ASSIGNMENT = (
    rf"(?P<kw>(?i:{_not_after('A-Za-z0-9')}pass(?![A-Za-z0-9_])|password|passwd|passphrase|pwd|secret"
    rf"|{_KEY}|token|auth|credentials?))(?![A-Za-z0-9_])(?:{_QUOTE})?\]?"
    r"(?P<sp>[ \t]*)(?::[ \t]*[A-Za-z_][\w.\[\]|]*[ \t]*)?"
    r"(?P<op>=>|:=|===?|=|:)[ \t]*"
    rf"(?:(?:[rRbBuUfF]{{1,2}})?(?P<q>{_QUOTE})(?P<secret>(?:[^\"'`\\\s]|\\\\(?![\\\"'`])){{1,300}})"
    rf"{_QUOTE}|(?P<bare>[^\s\"'`\\,;()\[\]{{}}<>]{{1,300}}))"
)

_ASSIGNMENT_WORDS = (
    "pass(?:word|wd|phrase)?",
    "pwd",
    "secret",
    _KEY,
    "token",
    "auth",
    "credential",
)

# Not in the middle of a run of base64, or just after a JSON escape (``\n``).
_AFTER_BASE64 = r"(?:(?<![A-Za-z0-9+/\\])|(?<=\\[nrt\"]))"
# A private key whose END line was cut off is masked to the end of its last line.  Its
# lines may end in real line breaks, in ``\n`` (JSON, a string literal in code) or
# ``\\n`` (a string literal in code in JSON), and may be string literals joined by
# ``+`` or by nothing; a body on one line may follow the BEGIN line after spaces.
_PEM_NEWLINE = r"(?:\r?\n|(?:\\{1,2}r)?\\{1,2}n)"
_PEM_GAP = rf"(?>(?:[ \t\"'`+,\\]*{_PEM_NEWLINE})+[ \t\"'`\\]*|[ \t]+)"
# A header (encrypted keys, PGP armour) or a line of base64 (JSON may escape its "/")
# that ends where the line does: a word of prose after the key is not taken in.
_PEM_LINE = (
    r"(?:(?:Proc-Type|DEK-Info|Comment|Version|Hash|Charset):[^\r\n\\]*"
    r"|(?:[A-Za-z0-9+=]|\\?/){8,}+(?=[ \t]*(?:[\r\n\\\"'`]|$)))"
)

KODIFY_DETECTORS: tuple[Detector, ...] = (
    Detector(
        "private_key",
        "Private keys in PEM form (RSA, EC, DSA, OpenSSH, PGP…) and PuTTY keys, whole",
        (
            # BEGIN … END, or to the end of the key's lines when the END was cut off.
            # Lines may end in real line breaks or in JSON's \n.
            Rule(
                r"-----BEGIN[A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----"
                r"(?:[\s\S]{0,60000}?-----END[A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----"
                rf"|(?:{_PEM_GAP}{_PEM_LINE})*)"
            ),
            Rule(r"PuTTY-User-Key-File-[0-9]:[\s\S]{0,20000}?Private-MAC:[ \t]*[0-9a-fA-F]+"),
        ),
    ),
    Detector(
        "kodify_token",
        "Kodify API tokens (kdf_…); the lookup prefix stays readable",
        (
            Rule(
                rf"{SCHEME}[A-Za-z0-9]{{{LOOKUP_LENGTH}}}_"
                rf"(?P<secret>[A-Za-z0-9]{{{SECRET_LENGTH}}})(?![A-Za-z0-9])"
            ),
        ),
    ),
    Detector(
        "authorization",
        "Authorization headers and bearer tokens",
        (
            Rule(
                rf"(?i:authorization){_QUOTE}?\]?[ \t]*[:=][ \t]*{_QUOTE}?[ \t]*"
                r"(?:(?i:bearer|basic|token|digest|apikey)[ \t]+)?"
                r"(?P<secret>[A-Za-z0-9._~+/:-]{8,}=*)",
                anchors=("authorization",),
            ),
            Rule(
                rf"{_not_after('A-Za-z')}(?i:bearer)[ \t]+(?P<secret>[A-Za-z0-9._~+/-]{{16,}}=*)",
                words=("bearer",),
            ),
        ),
        accept=accept_generated,
    ),
    Detector(
        "url_password",
        "Passwords in URLs (scheme://user:password@host); user and host stay readable",
        (
            Rule(
                r"://(?<=[A-Za-z0-9]://)[^\s:/?#@\"'\\]{0,200}:"
                r"(?P<secret>[^\s/?#@\"'\\]{1,200})@"
            ),
        ),
        accept=_accept_url_password,
    ),
    Detector(
        "assignment",
        "Values given to names like password, secret, token, api_key, client_secret "
        '(KEY = "value", key: value, KEY=value)',
        (
            Rule(
                _ASSIGNMENT,
                words=_ASSIGNMENT_WORDS,
            ),
        ),
        accept=_accept_assignment,
    ),
    Detector(
        "sk_api_key",
        "sk-… API keys (OpenAI, Anthropic, DeepSeek and alike; sk-live-…, sk-proj-…)",
        (Rule(rf"sk-{_not_after('A-Za-z0-9_-', 'sk-')}[A-Za-z0-9_-]{{20,}}"),),
        accept=_accept_sk_key,
        extend=True,
    ),
    Detector(
        "aws_secret_key",
        "AWS secret access keys, also without a keyword beside them (40 characters of "
        "base64 that look random)",
        (
            Rule(
                # (the second way only where JSON escapes a "/" in the key)
                rf"{_AFTER_BASE64}(?:[A-Za-z0-9+/]{{40}}"
                r"|(?=[A-Za-z0-9+/]*+\\/)(?:[A-Za-z0-9+]|\\/){40})(?![A-Za-z0-9+/=]|\\/)",
                locate=base64_runs,
            ),
        ),
        accept=_accept_aws_secret,
    ),
    Detector(
        "stripe_secret",
        "Stripe test-mode keys and webhook signing secrets (sk_test_…, rk_test_…, whsec_…)",
        (
            Rule(
                rf"{_not_after('A-Za-z0-9')}[rs]k_test_[0-9a-zA-Z]{{24,}}", scan="k_test_", back=1
            ),
            Rule(rf"whsec_{_not_after('A-Za-z0-9', 'whsec_')}[A-Za-z0-9+/=]{{32,}}"),
        ),
        extend=True,
    ),
    Detector(
        "github_pat",
        "GitHub fine-grained personal access tokens (github_pat_…)",
        (Rule(r"github_pat_[A-Za-z0-9_]{40,}"),),
    ),
    Detector(
        "slack_app_token",
        "Slack app-level and refresh tokens (xapp-…, xoxe-…)",
        (
            Rule(r"xapp-[0-9]+-[A-Za-z0-9-]{20,}"),
            Rule(r"xoxe(?:\.xox[a-z])?-[0-9]+-[A-Za-z0-9-]{20,}"),
        ),
        extend=True,
    ),
    Detector(
        "azure_client_secret",
        "Azure (Entra ID) client secrets (…Q~…)",
        (
            Rule(
                rf"{_not_after('A-Za-z0-9_~.-')}[A-Za-z0-9_~.]{{3}}[0-9]Q~[A-Za-z0-9_~.-]{{31,34}}"
                r"(?![A-Za-z0-9_~.-])",
                scan="Q~",
                back=4,
            ),
        ),
    ),
    Detector(
        "google_api_key",
        "Google API keys (AIza…)",
        (Rule(r"AIza[0-9A-Za-z_-]{35}"),),
        extend=True,
    ),
    Detector(
        "huggingface_token",
        "Hugging Face access tokens (hf_…)",
        (Rule(rf"hf_{_not_after('A-Za-z0-9', 'hf_')}[A-Za-z0-9]{{34,}}"),),
        accept=accept_generated,
    ),
    Detector(
        "npm_token",
        "npm access tokens (npm_…, and _authToken in .npmrc)",
        (
            Rule(r"/:_authToken=[ \t]*(?P<secret>npm_[A-Za-z0-9]{36}|[A-Fa-f0-9-]{36})"),
            Rule(rf"npm_{_not_after('A-Za-z0-9', 'npm_')}[A-Za-z0-9]{{36}}(?![A-Za-z0-9])"),
        ),
    ),
)


# -- extra patterns from a file ----------------------------------------------------------

_EXTRA_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, slots=True)
class ExtraProblem:
    line: int | None  # None: the file itself
    message: str


def read_extra(path: Path) -> tuple[list[Detector], list[ExtraProblem]]:
    """The file's ``name: regex`` lines as detectors, and what is wrong with the others."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [ExtraProblem(None, f"cannot be read ({exc})")]
    found: list[Detector] = []
    problems: list[ExtraProblem] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, regex = line.partition(":")
        name, regex = name.strip(), regex.strip()
        if not colon or not _EXTRA_NAME.fullmatch(name) or not regex:
            problems.append(ExtraProblem(number, "is not 'name: regular expression'"))
            continue
        try:
            compiled = re.compile(regex)
        except re.error as exc:
            problems.append(ExtraProblem(number, f"({name}) is not a valid regex: {exc}"))
            continue
        if compiled.search("") is not None:
            problems.append(ExtraProblem(number, f"({name}) matches the empty text"))
            continue
        description = f"{name} (KODIFY_JOURNAL_REDACT_EXTRA)"
        found.append(Detector(name, description, (Rule(regex),)))
    return found, problems
