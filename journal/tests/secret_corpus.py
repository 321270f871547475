"""A corpus of secrets in their real formats, and of ordinary code that must stay as it is,
for the journal's masking tests (``test_redact_corpus``).

Every secret is fake but valid for its format.  Its random part is made here from a
hash of its name (the same on every run) and the rest is assembled from pieces, so that
secret scanners (GitHub push protection, detect-secrets, gitleaks) find no key, token,
password or high-entropy string in this file.  ``body`` lists the parts of a secret that
must not survive masking: its random part (a token's readable prefix, the user and host
of a URL, the name a password is given to and a Kodify token's lookup id may stay).
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
from dataclasses import dataclass

ALNUM = string.ascii_letters + string.digits
HEX = string.digits + "abcdef"
BASE64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


def fake(name: str, length: int, alphabet: str = ALNUM) -> str:
    """``length`` characters of ``alphabet`` that look random, the same on every run."""
    out: list[str] = []
    counter = 0
    while len(out) < length:
        digest = hashlib.sha256(f"{name}/{counter}".encode()).digest()
        out += [alphabet[byte % len(alphabet)] for byte in digest]
        counter += 1
    return "".join(out[:length])


@dataclass(frozen=True)
class Secret:
    kind: str
    text: str  # as a developer would paste it
    body: tuple[str, ...]  # what must not survive, not even 8 characters of it


# A leak: this many characters in a row of a secret's body, still in what was stored.
WINDOW = 8


def leaked(stored: str, secret: Secret) -> list[str]:
    """Every ``WINDOW`` characters in a row of the secret's body still in ``stored``."""
    found = []
    for part in secret.body:
        size = min(WINDOW, len(part))
        found += [
            part[i : i + size] for i in range(len(part) - size + 1) if part[i : i + size] in stored
        ]
    return found


def _secret(kind: str, text: str, *body: str) -> Secret:
    return Secret(kind, text, body or (text,))


def _token(kind: str, prefix: str, length: int, alphabet: str = ALNUM, suffix: str = "") -> Secret:
    """A token: a readable prefix, then ``length`` random characters (the body)."""
    random = fake(kind, length, alphabet)
    return Secret(kind, prefix + random + suffix, (random,))


def _pem(label: str, lines: list[str], *, end: bool = True, newline: str = "\n") -> str:
    kind = f"{label} PRIVATE" if label else "PRIVATE"
    text = newline.join([f"-----BEGIN {kind} KEY-----", *lines])
    return text + (f"{newline}-----END {kind} KEY-----" if end else "")


def _b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _lines(name: str, count: int, last: int = 64) -> list[str]:
    """The body of a private key: lines of 64 base64 characters, the last one shorter."""
    lines = [fake(f"{name}/{n}", 64, BASE64) for n in range(count - 1)]
    return [*lines, fake(f"{name}/last", last, BASE64) + "=="]


RSA_LINES = _lines("rsa", 6, 42)
EC_LINES = _lines("ec", 3, 26)
OPENSSH_LINES = _lines("openssh", 5, 30)
PKCS8_LINES = _lines("pkcs8", 4, 50)
ENCRYPTED_HEADERS = ["Proc-Type: 4,ENCRYPTED", "DEK-Info: AES-128-CBC," + fake("iv", 32, HEX), ""]
AWS_KEY_ID = "AK" + "IA" + fake("aws_key_id", 16, string.ascii_uppercase + string.digits)
# The one of the review (AWS's documented example), and two made here; one has slashes.
AWS_DOCUMENTED_EXAMPLE = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
AWS_SECRET = fake("aws_secret", 40, BASE64)
AWS_SECRET_2 = fake("aws_secret_2", 17) + "/" + fake("aws_secret_2b", 22, BASE64)
JWT = ".".join(
    [
        _b64url({"alg": "HS256", "typ": "JWT"}),
        _b64url({"sub": "1234567890", "name": "Ada Lovelace", "iat": 1516239022}),
        fake("jwt", 43, URLSAFE),
    ]
)
_AZURE_KEY = fake("azure_storage", 86, BASE64) + "=="
_DIGITS = string.digits


def _assigned(kind: str, before: str, after: str = "", alphabet: str = ALNUM) -> Secret:
    """A value given to a name: ``before`` + 20 random characters + ``after``."""
    value = fake(kind, 20, alphabet)
    return Secret(kind, before + value + after, (value,))


SECRETS: list[Secret] = [
    # sk- keys: OpenAI (legacy, project), the sk-live-/sk-test- keys of the review,
    # Anthropic, DeepSeek (hex)
    _secret(
        "openai_legacy",
        "sk-" + fake("openai/1", 20) + "T3Blbk" + "FJ" + fake("openai/2", 20),
        fake("openai/1", 20),
        fake("openai/2", 20),
    ),
    _secret(
        "sk_live_dashed",
        "sk-" + "live-" + "4eC39Hq" + "LyjWDarjtT1zdp7dc",
        "4eC39Hq" + "LyjWDarjtT1zdp7dc",
    ),
    _token("sk_test_dashed", "sk-" + "test-", 24),
    _token("openai_project", "sk-" + "proj-", 156, URLSAFE),
    _token("anthropic", "sk-" + "ant-api03-", 93, URLSAFE, suffix="AA"),
    _token("deepseek", "sk-", 32, HEX),
    # Stripe, live and test, secret and restricted; a webhook signing secret
    _token("stripe_live", "sk_" + "live_", 24),
    _token("stripe_test", "sk_" + "test_", 24),
    _token("stripe_restricted", "rk_" + "live_", 24),
    _token("stripe_webhook", "wh" + "sec_", 32),
    # AWS: the access key id, the secret key given to its name, and alone
    _secret("aws_access_key_id", AWS_KEY_ID),
    _secret("aws_secret_with_keyword", "aws_secret_access_key = " + f'"{AWS_SECRET}"', AWS_SECRET),
    _secret("aws_secret_env", "AWS_SECRET_ACCESS_KEY=" + AWS_SECRET_2, AWS_SECRET_2),
    _secret("aws_secret_alone", AWS_DOCUMENTED_EXAMPLE),
    _secret(
        "aws_secret_in_code",
        f'boto3.client("s3", "{AWS_KEY_ID}", "{AWS_SECRET}")',
        AWS_KEY_ID,
        AWS_SECRET,
    ),
    _secret("aws_secret_alone_slashes", AWS_SECRET_2),
    # GitHub, GitLab, Slack, Google, Hugging Face, npm
    _token("github_ghp", "gh" + "p_", 36),
    _token("github_gho", "gh" + "o_", 36),
    _secret(
        "github_pat",
        "github" + "_pat_" + "11" + fake("pat/1", 20) + "_" + fake("pat/2", 59),
        fake("pat/1", 20),
        fake("pat/2", 59),
    ),
    _token("gitlab_pat", "gl" + "pat-", 20),
    _token(
        "slack_bot",
        "xo" + "xb-" + fake("slack/1", 13, _DIGITS) + "-" + fake("slack/2", 13, _DIGITS) + "-",
        24,
    ),
    _token(
        "slack_user",
        "xo" + "xp-" + fake("slack/3", 13, _DIGITS) + "-" + fake("slack/4", 13, _DIGITS) + "-",
        32,
        HEX,
    ),
    _token(
        "slack_app", "xa" + "pp-1-" + "A04QZ8B1K2M-" + fake("slack/5", 13, _DIGITS) + "-", 64, HEX
    ),
    _token("google_api_key", "AI" + "za" + "Sy", 33, URLSAFE),
    _token("huggingface", "hf" + "_", 34),
    _token("npm", "np" + "m_", 36),
    _secret("jwt", JWT, *JWT.split(".")),
    # private keys: whole, cut before their END line, encrypted, as a string literal
    _secret("pem_rsa", _pem("RSA", RSA_LINES), *RSA_LINES),
    _secret("pem_ec", _pem("EC", EC_LINES), *EC_LINES),
    _secret("pem_openssh", _pem("OPENSSH", OPENSSH_LINES), *OPENSSH_LINES),
    _secret("pem_pkcs8", _pem("", PKCS8_LINES), *PKCS8_LINES),
    _secret("pem_rsa_cut", _pem("RSA", RSA_LINES[:3], end=False), *RSA_LINES[:3]),
    _secret("pem_openssh_cut", _pem("OPENSSH", OPENSSH_LINES[:3], end=False), *OPENSSH_LINES[:3]),
    _secret(
        "pem_pkcs8_cut_mid_line",
        _pem("", [PKCS8_LINES[0], PKCS8_LINES[1][:30]], end=False),
        PKCS8_LINES[0],
        PKCS8_LINES[1][:30],
    ),
    _secret(
        "pem_encrypted_cut",
        _pem("RSA", [*ENCRYPTED_HEADERS, *RSA_LINES[1:3]], end=False),
        *RSA_LINES[1:3],
    ),
    _secret("pem_crlf", _pem("EC", EC_LINES, newline="\r\n"), *EC_LINES),
    _secret(
        "pem_literal",
        'KEY = "' + _pem("RSA", RSA_LINES[:3], newline="\\n") + '\\n"',
        *RSA_LINES[:3],
    ),
    _secret(
        "pem_literal_cut",
        'KEY = "' + _pem("EC", EC_LINES[:2], end=False, newline="\\n") + '\\n"',
        *EC_LINES[:2],
    ),
    _secret(
        "pem_literal_joined",
        'key = (\n    "' + _pem("", PKCS8_LINES, end=False, newline='\\n"\n    "') + '\\n"\n)',
        *PKCS8_LINES,
    ),
    # passwords in URLs and in assignments, keys given to their names
    _assigned("url_postgres", "postgres://app_user:", "@db.internal:5432/app"),
    _assigned("url_redis_no_user", "redis://:", "@cache:6379/0"),
    _assigned("url_mongodb_srv", "mongodb+srv://admin:", "@cluster0.abcde.mongodb.net/db"),
    _assigned("password_env", "DB_" + "PASSWORD="),
    _assigned("password_quoted", "db.connect(" + 'password="', '!")', ALNUM + "!#%&*"),
    _assigned("api_key_yaml", "api_" + "key: ", alphabet=HEX),
    _assigned("client_secret_json", '{"client_' + 'secret": "', '"}'),
    _assigned("secret_key_django", "SECRET_" + "KEY = 'django-insecure-", "'", ALNUM + "#$@&!"),
    _assigned("auth_token_env", "TWILIO_AUTH_" + "TOKEN=", alphabet=HEX),
    _assigned("bearer_header", "curl -H 'Authorization: " + "Bearer ", "' https://api"),
    # Azure, Twilio, SendGrid
    _secret(
        "azure_storage",
        "DefaultEndpointsProtocol=https;AccountName=kodifylogs;Account"
        + "Key="
        + _AZURE_KEY
        + ";EndpointSuffix=core.windows.net",
        _AZURE_KEY,
    ),
    _token("azure_client_secret", fake("azure_client_secret/id", 3) + "8Q~", 31, URLSAFE + "~."),
    _token("twilio_api_key", "SK", 32, HEX),
    _secret(
        "sendgrid",
        "SG" + "." + fake("sendgrid/1", 22, URLSAFE) + "." + fake("sendgrid/2", 43, URLSAFE),
        fake("sendgrid/1", 22, URLSAFE),
        fake("sendgrid/2", 43, URLSAFE),
    ),
    # Kodify's own API tokens: the lookup prefix stays readable
    _token("kodify_token", "kdf_" + fake("kodify/lookup", 8) + "_", 32),
]


# Ordinary code and text: nothing in it may change.  Decided: git SHAs, UUIDs, hex
# colours, content hashes and digests (hex or base64), public keys and certificates,
# Stripe publishable keys (pk_…, public by design), placeholders and base64 of
# ordinary data longer or shorter than 40 characters are not secrets.  A lone run of
# exactly 40 random-looking base64 characters is taken for an AWS secret key.
HARMLESS: list[str] = [
    # identifiers that merely name secrets
    "def rotate(token: str, *, max_tokens: int = 2048) -> Token:\n"
    "    tokenizer = AutoTokenizer.from_pretrained(MODEL_NAME)\n"
    "    return Token(value=token, secret_ref=settings.SECRET_NAME)",
    "if not bcrypt.checkpw(password.encode(), user.password_hash):\n"
    "    raise AuthenticationFailed('Invalid password')",
    'const apiKey = process.env.OPENAI_API_KEY;\nconst AUTH_HEADER = "Authorization";\n'
    "fetch(url, { headers: { Authorization: `Bearer ${apiKey}` } });",
    'type Config struct {\n\tToken    string `json:"token"`\n'
    '\tPassword string `json:"password,omitempty"`\n}',
    "CREATE TABLE users (id uuid PRIMARY KEY, password_hash text NOT NULL, api_token_id int);",
    "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n"
    "        name: db-credentials\n        key: password",
    'OPENAI_API_KEY=sk-...\nANTHROPIC_API_KEY="<your key>"\n'
    'api_key = "sk-xxxxxxxxxxxxxxxxxxxxxxxx"',
    "aws_access_key_id = ${AWS_ACCESS_KEY_ID}\nregion = us-east-1\n"
    "role_arn = arn:aws:iam::123456789012:role/S3Access",
    # hex colours, SHAs, UUIDs, digests
    ".btn-primary { color: #1e90ff; background: #FFF; border: 1px solid #a0a0a0; }\n"
    ".alert { background-color: #ff6347cc; }",
    "Fixed in 9fceb02d0ae598e95dc970b74767f19372d61af8 (cherry-picked from 3b18e51); "
    "run `git rebase -i HEAD~3` and `git show c0ffee254729296a45a3885639AC7E10F9d54979`.",
    "da39a3ee5e6b4b0d3255bfef95601890afd80709  empty.txt\n"
    "d41d8cd98f00b204e9800998ecf8427e  empty.txt",
    "user_id = uuid.UUID('123e4567-e89b-12d3-a456-426614174000')",
    "image: ghcr.io/kodify/server@sha256:"
    "4a8f9e2c1b7d3e6f0a5c8b2d9e1f4a7c3b6d0e9f2a5c8b1d4e7f0a3c6b9d2e5f",
    '"integrity": "sha512-Zb6SmZFZ7rKDVAf6ixy+MWnRXbFIp9j0DcmqZ0JXk1zB2aUtYRaQUQMDrRM9sxq==",',
    "golang.org/x/net v0.21.0 h1:AQyQV4dYCvJ7vGmJyKki9+PBdyvhkSd8EIx/qb0AYv4=\n"
    "github.com/aws/aws-sdk-go-v2/service/s3 v1.48.1 // indirect",
    # paths and long identifiers of 40 characters, base64 of ordinary data
    "import src/main/java/com/example/MyApplication2 from the module path",
    "see app/Http/Controllers/Api/V1/UserControll and usr/local/lib/python3/site/packages/Djan",
    "class AbstractSingletonProxyFactoryBean2Impl12 extends Base {}",
    "img = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42"
    "mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='",
    'echo "aGVsbG8gd29ybGQ=" | base64 -d',
    # words with sk- and similar prefixes, public keys and certificates
    "pip install scikit-learn  # sk-learn-compatible-estimator-wrapper, task-queue-worker-2024",
    "Stripe.js needs the publishable key pk_test_TYooMQauvdEDq54NiTphI7jx only.",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEd8x4Fm3pSQp7Wo1J8\n"
    "-----END PUBLIC KEY-----\n-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkq\n"
    "-----END CERTIFICATE-----",
    "ssh://git@github.com:2222/org/repo.git and https://user@example.com/path?q=1#top",
    # minified code and prose
    "!function(e,t){var n=t.createElement('script');n.src='/static/app.min.js?v=3';"
    "e.token=n.dataset.token||null}(window,document);",
    "Please never share your password, API key or token; rotate secrets every 90 days.",
]
