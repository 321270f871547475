"""What the journal's secret masking looks for: the shape of a detector, how a candidate
is judged, Kodify's own detectors, and extra patterns from a file.

Kodify's detectors cover what detect-secrets lacks or what its shape does not suit to
masking (``KEY = "value"`` assignments, ``Authorization`` headers, whole PEM blocks,
Kodify's tokens, passwords in URLs); :mod:`journal.redact_detect_secrets` brings in the
rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
    literal).
    """

    pattern: str
    anchors: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    scan: str | None = None
    back: int = 0


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


# -- the catalogue -----------------------------------------------------------------------

_QUOTE = r"""\\?["'`]"""  # a quote, or an escaped one inside a JSON string
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
    r"(?P<kw>(?i:(?<![A-Za-z0-9])pass(?![A-Za-z0-9_])|password|passwd|passphrase|pwd|secret"
    rf"|{_KEY}|token|auth|credentials?))(?![A-Za-z0-9_])(?:{_QUOTE})?\]?"
    r"(?P<sp>[ \t]*)(?::[ \t]*[A-Za-z_][\w.\[\]|]*[ \t]*)?"
    r"(?P<op>=>|:=|===?|=|:)[ \t]*"
    rf"(?:(?:[rRbBuUfF]{{1,2}})?(?P<q>{_QUOTE})(?P<secret>(?:[^\"'`\\\s]|\\\\){{1,300}})"
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
                r"|(?:[ \t]*(?:\r?\n|\\r?\\n)(?:[A-Za-z-]+:[^\r\n\\]*|[A-Za-z0-9+/=]{8,}))*)"
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
                r"(?<![A-Za-z])(?i:bearer)[ \t]+(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)",
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
                r"://(?<=[A-Za-z0-9]://)[^\s:/?#@\"'\\]{1,200}:"
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
        "sk-… API keys (OpenAI project keys, Anthropic, DeepSeek and alike)",
        (Rule(r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9_-]{32,}"),),
        accept=accept_generated,
        extend=True,
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
        (Rule(r"hf_(?<![A-Za-z0-9]hf_)[A-Za-z0-9]{34,}"),),
        accept=accept_generated,
    ),
    Detector(
        "npm_token",
        "npm access tokens (npm_…, and _authToken in .npmrc)",
        (
            Rule(r"/:_authToken=[ \t]*(?P<secret>npm_[A-Za-z0-9]{36}|[A-Fa-f0-9-]{36})"),
            Rule(r"npm_(?<![A-Za-z0-9]npm_)[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
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
