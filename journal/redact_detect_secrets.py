"""The regex-based plugins of Yelp's detect-secrets as detectors, so that new token
formats arrive with an upgrade of that package.

Each plugin pattern is taken as it is, or with a cheap way to find it (see
:class:`~journal.redact_catalogue.Rule`), or left out where Kodify's own detectors mask
the same secrets better or the pattern could only be tried at every character.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from journal.redact_catalogue import Detector, Rule, accept_generated

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
    # sk_api_key masks these keys already; the leading [...]* would run to the end of a
    # long hyphenated word at every sk- in it (quadratic).
    r"sk-[A-Za-z0-9-_]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}": None,
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
        accept = accept_generated if name == "jwt" else None
        description = f"{plugin.secret_type} (detect-secrets)"
        found.append(Detector(name, description, rules, accept, extend=True))
    return tuple(found)
