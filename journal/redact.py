"""Mask secrets in prompts and answers before the journal stores them.

Auditors read the journal; they must never read a live credential a developer pasted
into a prompt.  Every secret found is replaced by ``[REDACTED:<detector>]`` so that the
auditor still sees what kind of secret it was.

The catalogue is Yelp's detect-secrets (its regex-based plugins: AWS, GitHub, GitLab,
Slack, Stripe, JWT…), so that new token formats arrive with an upgrade of that package,
plus Kodify's own detectors for what it lacks or what its shape does not suit to masking
(``KEY = "value"`` assignments, ``Authorization`` headers, whole PEM blocks, Kodify's
tokens, passwords in URLs).  Detectors are named; ``KODIFY_JOURNAL_REDACT_SKIP`` turns
built-in ones off, ``KODIFY_JOURNAL_REDACT_EXTRA`` adds patterns from a file.

Speed matters: this runs in the journal writer's thread, beside the proxy, on prompts of
tens of kilobytes.  Python's regex engine is quick only where a pattern starts with a
literal (it then skips ahead to it); one alternation of all patterns, or a pattern that
starts with a class or a case-insensitive keyword, costs tens of nanoseconds at every
character.  So each pattern says how it is found cheaply: by its literal start (most
token formats), by keywords looked up with ``str.find`` in the lower-cased text, or by
a cheaper pattern for a part it must contain; the full pattern is tried only there.

Request bodies are masked as JSON text.  A mask never cuts a JSON escape (``\\n``,
``\\"``, ``\\u00e9``) in half and never contains a quote or backslash, so masked JSON stays
valid JSON; patterns accept ``\\"`` quotes and ``\\n`` line ends for the same reason.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from accounts.tokens import LOOKUP_LENGTH, SCHEME, SECRET_LENGTH

logger = logging.getLogger(__name__)

MARK = "[REDACTED:{}]"

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


def _accept_generated(value: str, match: re.Match[str]) -> bool:
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
        accept=_accept_generated,
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
        accept=_accept_generated,
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
        accept=_accept_generated,
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

# detect-secrets plugins by class name: the name Kodify gives them.
_DS_NAMES = {
    "AWSKeyDetector": "aws_key",
    "ArtifactoryDetector": "artifactory",
    "AzureStorageKeyDetector": "azure_storage_key",
    "BasicAuthDetector": "basic_auth",
    "CloudantDetector": "cloudant",
    "DiscordBotTokenDetector": "discord_bot_token",
    "GitHubTokenDetector": "github_token",
    "GitLabTokenDetector": "gitlab_token",
    "IbmCloudIamDetector": "ibm_cloud_iam",
    "IbmCosHmacDetector": "ibm_cos_hmac",
    "JwtTokenDetector": "jwt",
    "MailchimpDetector": "mailchimp_key",
    "OpenAIDetector": "openai_key",
    "PypiTokenDetector": "pypi_token",
    "SendGridDetector": "sendgrid_key",
    "SlackDetector": "slack_token",
    "SoftlayerDetector": "softlayer",
    "SquareOAuthDetector": "square_oauth",
    "StripeDetector": "stripe_key",
    "TelegramBotTokenDetector": "telegram_bot_token",
    "TwilioKeyDetector": "twilio_key",
}
_DS_LEFT_OUT = {
    # IP addresses are not secrets, and configuration is full of them.
    "IPPublicDetector",
    # Only the BEGIN line: Kodify's private_key masks the whole block instead.
    "PrivateKeyDetector",
    # .+ to the end of the line, which in JSON text is the rest of the body: npm_token.
    "NpmDetector",
}
# How each slow pattern of detect-secrets is found cheaply (see Rule); None: left out.
# A pattern not listed is searched as it is: correct, and quick when it starts with a
# literal.  test_redact checks that every installed pattern is quick or listed here.
_DS_RULES: dict[str, dict[str, Any] | None] = {
    # aws.{0,20}?(key|pwd|…).{0,20}?'<40 characters>'
    r"aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?[\'\"]([0-9a-zA-Z/+]{40})[\'\"]": {
        "anchors": ("aws",)
    },
    r'(?:\s|=|:|"|^)AKC[a-zA-Z0-9]{10,}(?:\s|"|$)': {"scan": "AKC", "back": 1},
    # AP + one hex digit + 8 letters is also a class name (APBackend, APDataset).
    r'(?:\s|=|:|"|^)AP[\dABCDEF][a-zA-Z0-9]{8,}(?:\s|"|$)': None,
    r"[MNO][a-zA-Z\d_-]{23,25}\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}": {
        "scan": r"\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}",
        "back": 26,
    },
    r"[0-9a-z]{32}-us[0-9]{1,2}": {"scan": "-us[0-9]", "back": 32},
    r"xox(?:a|b|p|o|s|r)-(?:\d+-)+[a-z0-9]+": {"anchors": ("xox",)},
    r"https://hooks\.slack\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+": {
        "anchors": ("https://hooks.slack.com/",)
    },
    r"(?:r|s)k_live_[0-9a-zA-Z]{24}": {"scan": "k_live_", "back": 1},
    r"\d{8,10}:[0-9A-Za-z_-]{35}": {"scan": ":[0-9A-Za-z_-]{35}", "back": 10},
    r"(?:http|https)://api.softlayer.com/soap/(?:v3|v3.1)/([a-z0-9]{64})": {
        "anchors": ("://api.softlayer.com/soap/",),
        "back": 5,
    },
    # user:password@….cloudant.com: url_password and basic_auth mask these already.
    r"(?:https?\:\/\/)[\w\-]+\:([0-9a-f]{64})\@[\w\-]+\.cloudant\.com": None,
    r"(?:https?\:\/\/)[\w\-]+\:([a-z]{24})\@[\w\-]+\.cloudant\.com": None,
}
# Left out: "a name ending in key/pwd/pass/token, then a value of exactly N characters"
# (Cloudant, IBM, SoftLayer).  The assignment detector masks values given to such names
# (of any length, judged by their look); these could only be found by trying them at
# every character.
_DS_KEYWORD_STYLE = "(?:(?<=\\W)|(?<=^))(?:\\[|)(?:\"|\\'|)(?:"
# The signature is lazily left out upstream (the plugin then decodes the token); a mask
# must cover all three parts.
_DS_JWT = r"eyJ[A-Za-z0-9-_=]+\.[A-Za-z0-9-_=]+\.?[A-Za-z0-9-_.+/=]*?"
_JWT = r"eyJ[A-Za-z0-9_=-]{8,}\.[A-Za-z0-9_=-]{8,}\.?[A-Za-z0-9_.+/=-]*"
_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"))


def _ds_rule(pattern: re.Pattern[str]) -> Rule | None:
    source = pattern.pattern
    if source.startswith(_DS_KEYWORD_STYLE):
        return None
    if source == _DS_JWT:
        return Rule(_JWT)
    letters = "".join(letter for flag, letter in _FLAG_LETTERS if pattern.flags & flag)
    scoped = f"(?{letters}:{source})" if letters else source
    if source not in _DS_RULES:
        return Rule(scoped)
    how = _DS_RULES[source]
    return None if how is None else Rule(scoped, **how)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.removesuffix("Detector")).lower()


def detect_secrets_detectors() -> tuple[Detector, ...]:
    """The regex-based plugins of the installed detect-secrets, by class name (a stable
    order: where two match at one place, the first names the secret)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    found = []
    plugins: Iterable[Any] = get_mapping_from_secret_type_to_class().values()
    for plugin in sorted(plugins, key=lambda cls: cls.__name__):
        if not issubclass(plugin, RegexBasedDetector) or plugin.__name__ in _DS_LEFT_OUT:
            continue
        rules = tuple(rule for p in plugin().denylist if (rule := _ds_rule(p)) is not None)
        if not rules:
            continue
        name = _DS_NAMES.get(plugin.__name__) or _snake(plugin.__name__)
        accept = _accept_generated if name == "jwt" else None
        description = f"{plugin.secret_type} (detect-secrets)"
        found.append(Detector(name, description, rules, accept, extend=True))
    return tuple(found)


_BY_CONTEXT = ("authorization", "assignment")


def builtin_detectors() -> tuple[Detector, ...]:
    # Where two find the same secret, the first names it.  A token's format says more
    # than the place it stood in (a GitHub token given to ``token =``), so the detectors
    # that go by context come last; Kodify's formats come before detect-secrets' ones
    # (``url_password`` before ``basic_auth``).
    formats = tuple(d for d in KODIFY_DETECTORS if d.name not in _BY_CONTEXT)
    context = tuple(d for d in KODIFY_DETECTORS if d.name in _BY_CONTEXT)
    return formats + detect_secrets_detectors() + context


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


# -- compiled ----------------------------------------------------------------------------


class _Single:
    """One rule compiled, with its detector and its place in the order."""

    __slots__ = ("back", "detector", "finders", "group", "order", "regex", "scan")

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

    def may_match(self, text: str, lower: str | None) -> bool:
        """False when this rule cannot match anywhere: one C-level search, so that the
        common case (nothing secret in the text) costs little per rule."""
        if self.finders and lower is not None:
            return any(finder.search(lower) is not None for finder in self.finders)
        if self.scan is not None:
            return self.scan.search(text) is not None
        return self.regex.search(text) is not None

    def starts(self, text: str, lower: str | None) -> Iterator[int]:
        """Positions where a match may start, in order (with repeats)."""
        if self.finders and lower is not None:
            hits = {found.start() for finder in self.finders for found in finder.finditer(lower)}
            for at in sorted(hits):
                yield from range(max(at - self.back, 0), at + 1)
        elif self.scan is not None:
            for hit in self.scan.finditer(text):
                yield from range(max(hit.start() - self.back, 0), hit.start() + 1)

    def find(self, text: str, lower: str | None) -> Iterator[tuple[int, int, int]]:
        """(secret start, order, secret end) of every secret kept."""
        if (not self.finders and self.scan is None) or (self.finders and lower is None):
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
