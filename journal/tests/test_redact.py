"""Secret masking: every detector masks its secret (and only it), JSON stays JSON, code
that merely talks about secrets stays as it is, and the settings switch detectors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from journal import redact
from journal.redact_checks import redact_settings

# Fake secrets, assembled so that no scanner mistakes this file for a leak.
GITHUB = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"
AWS_ID = "AKIA" + "Z7Q2M4N8R1T5W3Y9"
STRIPE = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc" + "XtraTail42"
SLACK = "xox" + "b-1234567890-0987654321-" + "AbCdEfGhIjKlMnOpQrStUvWx"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
OPENAI_PROJECT = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2
KODIFY_LOOKUP = "kdf_Ab12Cd34_"
KODIFY_SECRET = "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe"
PEM_BODY = "MIIEpAIBAAKCAQEA7bq1cX2zLk\nq8n2Vb4TyUeRw9s0dPk3jHn6mYf1gZa==\n"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}-----END RSA PRIVATE KEY-----"

# (text, the secret in it, the detector that must mask it)
CASES = [
    (f"token = '{GITHUB}'", GITHUB, "github_token"),
    (f"AWS_ACCESS_KEY_ID={AWS_ID}", AWS_ID, "aws_key"),
    (f"stripe.api_key = {STRIPE!r}", STRIPE, "stripe_key"),  # the format names it best
    (f"charge with {STRIPE} now", STRIPE, "stripe_key"),
    (f"SLACK={SLACK}", SLACK, "slack_token"),
    (f"curl -H 'Authorization: Bearer {JWT}' https://api", JWT, "jwt"),
    ("curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA=='", "dXNlcjpwYXNz", "authorization"),
    (f"cookie {JWT};", JWT, "jwt"),
    (f"client = OpenAI(key={OPENAI_PROJECT!r})", OPENAI_PROJECT, "sk_api_key"),
    (f"export KODIFY_KEY={KODIFY_LOOKUP}{KODIFY_SECRET}", KODIFY_SECRET, "kodify_token"),
    ("DATABASE_URL=postgres://kodify:S3cr3t-pa55@db:5432/kodify", "S3cr3t-pa55", "url_password"),
    ('db.connect(password="hunter2")', "hunter2", "assignment"),
    ("DB_PASSWORD=correcthorsebattery", "correcthorsebattery", "assignment"),
    ("password: s3cret!", "s3cret!", "assignment"),
    ('"client_secret": "0a1b2c3d4e5f"', "0a1b2c3d4e5f", "assignment"),
    ("const apiKey = `Zq81mXv0Lp27`;", "Zq81mXv0Lp27", "assignment"),
    ('headers["Authorization"] = "Token 9f8e7d6c5b4a3928"', "9f8e7d6c5b4a3928", "authorization"),
    (f"key:\n{PEM}\nend", PEM_BODY.split("\n")[1], "private_key"),
]  # fmt: skip

# Ordinary code and text that must come out exactly as it went in.
HARMLESS = [
    "token_count = len(tokens)\nmax_tokens = 2048\ntokenizer = AutoTokenizer.from_pretrained(name)",
    'eos_token = "</s>"\npad_token = "[PAD]"\nbos_token: "<s>"\ntoken = 50256',
    "password_hash = make_password(raw_password)\nif not check_password(password, user.password):",
    'api_key = os.environ["OPENAI_API_KEY"]\nsecret = settings.SECRET_KEY\ntoken = request.token',
    'password = input("Password: ")\nauth = HTTPBasicAuth(user, password)\nauth: AuthConfig',
    'password: str = Field(..., min_length=8)\n"password": "string",\napiKey: process.env.API_KEY,',
    'password = "${DB_PASSWORD}"\napi_key = "YOUR_API_KEY"\nsecret: "{{ vault_secret }}"',
    'headers = {"Authorization": f"Bearer {token}"}\n"Authorization": "Bearer " + token',
    "id = '123e4567-e89b-12d3-a456-426614174000'  # a UUID",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 and c0ffee254729296a45a3885639AC7E10F9d54979",
    '"integrity": "sha512-Zb6SmZFZ7rKDVAf6ixy+MWnRXbFIp9j0DcmqZ0JXk1zB2aUtYRaQUQMDrRM9sxq==",',
    'hash = "sha256:4a8f9e2c1b7d3e6f0a5c8b2d9e1f4a7c3b6d0e9f2a5c8b1d4e7f0a3c6b9d2e5f"',
    "Please reset your password and never share your API key or token with anyone.",
    "See http://localhost:8000/v1/chat/completions and git@github.com:org/repo.git",
    "ssh://git@example.com:2222/repo.git and https://user@example.com/path",
    "class APBackendDataset(Dataset): pass\nbypass = True\ncompass = 'north'",
    "The auth flow: oauth2 with PKCE; secret rotation every 90 days.",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
]


@pytest.fixture(autouse=True)
def fresh_detectors() -> Iterator[None]:
    redact.reset()
    yield
    redact.reset()


@pytest.mark.parametrize(("text", "secret", "detector"), CASES)
def test_each_detector_masks_the_secret_and_names_itself(
    text: str, secret: str, detector: str
) -> None:
    masked, count = redact.redact(text)
    assert secret not in masked
    assert f"[REDACTED:{detector}]" in masked
    assert count >= 1


@pytest.mark.parametrize(("text", "secret", "detector"), CASES)
def test_masking_inside_json_strings_keeps_the_json_valid(
    text: str, secret: str, detector: str
) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": f"look:\n{text}\n\tok"}]})
    masked, count = redact.redact(body)
    assert count >= 1
    assert secret not in masked
    content = json.loads(masked)["messages"][0]["content"]
    assert content.startswith("look:\n") and content.endswith("\n\tok")


@pytest.mark.parametrize("text", HARMLESS)
def test_ordinary_code_and_text_are_left_alone(text: str) -> None:
    assert redact.redact(text) == (text, 0)
    body = json.dumps({"prompt": text})
    assert redact.redact(body) == (body, 0)


def test_only_the_secret_part_is_masked() -> None:
    masked, _ = redact.redact("postgres://kodify:S3cr3t-pa55@db:5432/kodify")
    assert masked == "postgres://kodify:[REDACTED:url_password]@db:5432/kodify"
    masked, _ = redact.redact(f"{KODIFY_LOOKUP}{KODIFY_SECRET}")
    assert masked == f"{KODIFY_LOOKUP}[REDACTED:kodify_token]"
    masked, _ = redact.redact('password = "hunter2"  # keep')
    assert masked == 'password = "[REDACTED:assignment]"  # keep'


def test_a_pem_key_in_a_json_string_is_masked_whole() -> None:
    body = json.dumps({"prompt": f"fix this:\n{PEM}\nthanks"})
    assert "\\n" in body  # the key's lines are JSON escapes here, not line breaks
    masked, count = redact.redact(body)
    assert count == 1
    assert json.loads(masked) == {"prompt": "fix this:\n[REDACTED:private_key]\nthanks"}


def test_a_pem_key_cut_off_before_its_end_is_masked_to_its_last_line() -> None:
    text = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}and then the question"
    masked, count = redact.redact(text)
    assert count == 1
    assert masked == "[REDACTED:private_key]\nand then the question"


def test_a_longer_token_is_masked_to_its_end() -> None:
    # detect-secrets' Stripe pattern matches 24 characters; newer keys are longer
    masked, _ = redact.redact(f"charge with {STRIPE} now")
    assert masked == "charge with [REDACTED:stripe_key] now"


def test_several_secrets_are_counted_and_masking_again_changes_nothing() -> None:
    text = f"a={GITHUB}\nb={AWS_ID}\npassword: hunter22\n{JWT}"
    masked, count = redact.redact(text)
    assert count == 4
    assert redact.redact(masked) == (masked, 0)


def test_escapes_next_to_a_secret_stay_whole() -> None:
    # \u00e9 right before a key: the mask must not start inside the escape
    body = '{"p": "caf\\u00e9' + GITHUB + '\\u00e9"}'
    masked, count = redact.redact(body)
    assert count == 1
    assert json.loads(masked) == {"p": "café[REDACTED:github_token]é"}


def test_detectors_lists_names_and_descriptions_of_both_catalogues() -> None:
    listed = dict(redact.detectors())
    for name in ("assignment", "private_key", "kodify_token", "github_token", "aws_key"):
        assert name in listed
    assert "(detect-secrets)" in listed["github_token"]
    assert "ip_public" not in listed and "p_public" not in listed


def test_every_detect_secrets_pattern_is_quick_to_find_or_left_out() -> None:
    # A new or changed pattern in a detect-secrets upgrade that starts with neither a
    # literal nor a listed way to find it would be tried at every character.
    literal_start = re.compile(
        r"(?:\(\?:)?(?:[A-Za-z0-9_=:/-]|\\[.-]){2}"  # AKIA…, SG\.…, (?:A3T…|ABIA…)
        r"|\((?:[a-z]+\|)+[a-z]+\)[_-]"  # (ghp|gho|…)_
    )
    for detector in redact.detect_secrets_detectors():
        for rule in detector.rules:
            quick = rule.anchors or rule.words or rule.scan or literal_start.match(rule.pattern)
            assert quick, f"{detector.name}: {rule.pattern}"


@override_settings(KODIFY_JOURNAL_REDACT_SKIP=["github_token", "assignment"])
def test_skipped_detectors_are_not_applied() -> None:
    names = {name for name, _ in redact.detectors()}
    assert "github_token" not in names and "assignment" not in names
    text = f"x = '{GITHUB}'\npassword = 'hunter2'"
    assert redact.redact(text) == (text, 0)


def test_changing_the_settings_rebuilds_the_detectors() -> None:
    assert redact.redact(f"x {GITHUB}")[1] == 1
    with override_settings(KODIFY_JOURNAL_REDACT_SKIP=["github_token"]):
        assert redact.redact(f"x {GITHUB}")[1] == 0
    assert redact.redact(f"x {GITHUB}")[1] == 1


def test_extra_patterns_come_from_a_file(tmp_path: Path) -> None:
    extra = tmp_path / "redact.txt"
    extra.write_text(
        "# internal ticket tokens\n\nticket: TCK-[0-9]{6}\n"
        "vault_path: vault://(?P<secret>[a-z/]+)\n",
        encoding="utf-8",
    )
    with override_settings(KODIFY_JOURNAL_REDACT_EXTRA=extra):
        masked, count = redact.redact("see TCK-123456 and vault://team/db/main here")
        assert ("ticket", "ticket (KODIFY_JOURNAL_REDACT_EXTRA)") in redact.detectors()
        assert redact_settings() == []
    assert count == 2
    assert masked == "see [REDACTED:ticket] and vault://[REDACTED:vault_path] here"


def test_a_bad_extra_line_is_reported_and_the_good_ones_still_apply(tmp_path: Path) -> None:
    extra = tmp_path / "redact.txt"
    extra.write_text("broken: ab(c\nno colon here\nempty: x*\nok: OK-[0-9]+\n", "utf-8")
    with override_settings(KODIFY_JOURNAL_REDACT_EXTRA=extra):
        messages = redact_settings()
        assert redact.redact("OK-42")[0] == "[REDACTED:ok]"
    assert [m.id for m in messages] == ["kodify.E032"] * 3
    assert "line 1 of" in messages[0].msg and "not a valid regex" in messages[0].msg
    assert "line 2 of" in messages[1].msg and "'name: regular expression'" in messages[1].msg
    assert "line 3 of" in messages[2].msg and "matches the empty text" in messages[2].msg


def test_an_unreadable_extra_file_is_reported(tmp_path: Path) -> None:
    with override_settings(KODIFY_JOURNAL_REDACT_EXTRA=tmp_path / "missing.txt"):
        messages = redact_settings()
        assert redact.redact(f"x {GITHUB}")[1] == 1  # the built-in ones still apply
    assert len(messages) == 1 and messages[0].id == "kodify.E032"
    assert "cannot be read" in messages[0].msg


def test_an_unknown_skipped_name_is_a_warning() -> None:
    with override_settings(KODIFY_JOURNAL_REDACT_SKIP=["github_token", "no_such_thing"]):
        messages = redact_settings()
    assert [m.id for m in messages] == ["kodify.W032"]
    assert "no_such_thing" in messages[0].msg and "github_token" not in messages[0].msg
