"""What the environment says: every setting an administrator can give Kodify.

The only module that reads the environment, through the typed readers of ``env.py``;
``framework.py`` builds Django's own settings from what it finds.
With nothing set, Kodify runs on embedded defaults: SQLite under ``KODIFY_DATA_DIR``, an
in-memory channel layer and eager Celery.  ``DB_URL`` and ``REDIS_URL`` switch to the
production services.  Bad values are reported by system checks (``kodify_site/checks.py``).
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

from kodify_site.env import Env

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = Env()

# ---------------------------------------------------------------------------------------
env.group = "Server"

DEBUG = env.bool("KODIFY_DEBUG", False, help="Django debug mode. Never on in production.")
KODIFY_DATA_DIR: Path = env.path(
    "KODIFY_DATA_DIR",
    "data",
    base=BASE_DIR,
    help="Folder for the embedded SQLite database and other local state "
    "(relative paths start at the project directory).",
    example="/var/lib/kodify",
)
ALLOWED_HOSTS = list(
    env.list(
        "KODIFY_ALLOWED_HOSTS",
        ("*",),
        help="Host names this server answers to (Django ALLOWED_HOSTS). IDE plugins call "
        "it by many names, hence every host by default.",
        example="kodify.example.com,10.0.0.5",
    )
)
CSRF_TRUSTED_ORIGINS = list(
    env.list(
        "KODIFY_CSRF_TRUSTED_ORIGINS",
        help="Origins allowed to post console forms when the console is behind a "
        "proxy that changes the scheme or port.",
        example="https://kodify.example.com",
    )
)


def _proxy_address(value: str) -> str:
    """An address or a network of a trusted proxy (``*``: any peer)."""
    if value != "*":
        ipaddress.ip_network(value, strict=False)  # ValueError names what is wrong
    return value


KODIFY_TRUSTED_PROXIES = env.list(
    "KODIFY_TRUSTED_PROXIES",
    help="Addresses or networks of the reverse proxies in front of Kodify. Only from "
    "these are X-Forwarded-For (the client's address, for the journal and the login "
    "throttle) and X-Forwarded-Proto believed; from anyone else they are ignored. "
    "Unset: nobody's. '*' trusts every peer: only where nothing but the proxy can reach "
    "Kodify.",
    example="10.0.0.0/8,192.168.1.5",
    item=_proxy_address,
)
KODIFY_HTTPS = env.bool(
    "KODIFY_HTTPS",
    False,
    help="Browsers reach Kodify over HTTPS (its own TLS, or a proxy's that sets "
    "X-Forwarded-Proto from KODIFY_TRUSTED_PROXIES). Turns on the redirect to HTTPS, "
    "Strict-Transport-Security and secure cookies for the console. The IDE API and "
    "/health are never redirected.",
    example="true",
)
KODIFY_HSTS_SECONDS = env.int(
    "KODIFY_HSTS_SECONDS",
    365 * 24 * 3600,
    minimum=0,
    help="With KODIFY_HTTPS: how long browsers remember to use only HTTPS for this host "
    "and its subdomains (Strict-Transport-Security max-age).",
)
KODIFY_HSTS_PRELOAD = env.bool(
    "KODIFY_HSTS_PRELOAD",
    False,
    help="With KODIFY_HTTPS: ask browsers' HSTS preload lists to include the domain "
    "(hard to undo: for the domain's owner to decide).",
)
KODIFY_SESSION_HOURS = env.float(
    "KODIFY_SESSION_HOURS",
    12.0,
    minimum=0.1,
    help="How long a console login lasts without activity, in hours.",
)
LOG_LEVEL = env.str(
    "KODIFY_LOG_LEVEL",
    "INFO",
    choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    help="Level of Kodify's own log messages.",
)


def _development_secret_key(data_dir: Path) -> str:
    """A random key kept in the data folder, so sessions survive a restart on a laptop.

    ``manage.py check --deploy`` rejects it (kodify.E010): production sets KODIFY_SECRET_KEY.
    """
    path = data_dir / "development_secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    except OSError:
        return DEVELOPMENT_SECRET_KEY_PREFIX + secrets.token_urlsafe(40)
    key = DEVELOPMENT_SECRET_KEY_PREFIX + secrets.token_urlsafe(40)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        # O_EXCL: several workers starting together agree on the first one written.
        with path.open("x") as handle:
            handle.write(key)
    except FileExistsError:
        return path.read_text().strip()
    except OSError:
        pass
    return key


DEVELOPMENT_SECRET_KEY_PREFIX = "kodify-development-"  # noqa: S105 - a marker
SECRET_KEY = env.str(
    "KODIFY_SECRET_KEY",
    None,
    secret=True,
    help="Django secret key (signs sessions and keys the token hashes). Required in "
    "production; without it a development key is generated in KODIFY_DATA_DIR and "
    "`manage.py check --deploy` fails.",
    example="(50+ random characters)",
) or _development_secret_key(KODIFY_DATA_DIR)
USING_DEVELOPMENT_SECRET_KEY = SECRET_KEY.startswith(DEVELOPMENT_SECRET_KEY_PREFIX)

# ---------------------------------------------------------------------------------------
env.group = "Authentication"

MTSAI_AUTH = env.bool(
    "MTSAI_AUTH",
    False,
    help="true: per-user tokens kept in the database (needs AUTH_TYPE=DB). false: "
    "one-token mode when VLLM_API_KEY is set, else no token at all (dummy mode).",
)
AUTH_TYPE = env.str(
    "AUTH_TYPE",
    "NO",
    choices=("NO", "DB"),
    help="DB with MTSAI_AUTH=true (per-user tokens); NO otherwise.",
    example="DB",
)
VLLM_API_KEY = env.str(
    "VLLM_API_KEY",
    None,
    secret=True,
    help="One token for every user (one-token mode) when MTSAI_AUTH is false. vLLM reads "
    "the same variable, so Kodify also sends it to the upstreams that have no key of "
    "their own.",
    example="(a long random string)",
)
USERS_TABLE = env.str(
    "USERS_TABLE",
    None,
    help="Table that holds the API users in per-user mode; a schema-qualified name such "
    "as auth.api_users is allowed.",
    example="kodify_api_users",
)

KODIFY_TOKEN_HASH_KEY = env.str(
    "KODIFY_TOKEN_HASH_KEY",
    None,
    secret=True,
    help="Secret that keys the stored hashes of API tokens. Unset: derived from "
    "KODIFY_SECRET_KEY (changing that key then invalidates every token).",
    example="(50+ random characters)",
)
KODIFY_AUTH_CACHE_SECONDS = env.float(
    "KODIFY_AUTH_CACHE_SECONDS",
    1.0,
    minimum=0.0,
    maximum=1.0,
    help="How long each worker trusts what it read about a token; a revoked or expired "
    "token or a disabled user is refused everywhere within this time.",
)
KODIFY_AUTH_FAILURES_PER_MINUTE = env.int(
    "KODIFY_AUTH_FAILURES_PER_MINUTE",
    60,
    minimum=0,
    help="Per-user mode: failed authentications a client address may have per minute in "
    "each worker; past it, tokens the worker has not seen valid get 429 without a "
    "database lookup (0: no limit).",
)
KODIFY_RATE_LIMIT_PER_MINUTE = env.int(
    "KODIFY_RATE_LIMIT_PER_MINUTE",
    600,
    minimum=0,
    help="Per-user mode: requests a user may make per minute (0: no limit); a user's own "
    "setting in the console overrides it.",
)
KODIFY_MAX_CONCURRENT = env.int(
    "KODIFY_MAX_CONCURRENT",
    16,
    minimum=0,
    help="Per-user mode: requests a user may have in flight at once (0: no limit); a "
    "user's own setting in the console overrides it.",
)
KODIFY_ADMIN_API_KEY = env.str(
    "KODIFY_ADMIN_API_KEY",
    None,
    secret=True,
    help="Key for automation on the management API (/api/), sent as "
    "'Authorization: Bearer <key>'; it acts as an administrator.",
    example="(a long random string)",
)
KODIFY_LOGIN_FAILURE_LIMIT = env.int(
    "KODIFY_LOGIN_FAILURE_LIMIT",
    5,
    minimum=1,
    help="Console login: failed attempts (per user name and client address) before the "
    "login is locked for KODIFY_LOGIN_COOLOFF_MINUTES.",
)
KODIFY_LOGIN_COOLOFF_MINUTES = env.float(
    "KODIFY_LOGIN_COOLOFF_MINUTES",
    15.0,
    minimum=0.1,
    help="Console login: minutes a locked login stays locked.",
)

# ---------------------------------------------------------------------------------------
env.group = "Databases and services"

DB_URL = env.url(
    "DB_URL",
    None,
    schemes=("postgresql", "postgres", "sqlite"),
    secret=True,
    help="Kodify's main database (users, tokens, upstreams, schedules) in every auth mode. "
    "Unset: a SQLite file in KODIFY_DATA_DIR, fine for one instance.",
    example="postgresql://kodify:secret@postgres:5432/kodify",
)
KODIFY_DB_POOL_SIZE = env.int(
    "KODIFY_DB_POOL_SIZE",
    4,
    minimum=0,
    maximum=100,
    help="PostgreSQL connections each server process keeps open for reuse (psycopg's "
    "pool). Keep workers times this under PostgreSQL's max_connections. 0: a new "
    "connection for every use.",
)
RUN_MIGRATIONS = env.bool(
    "RUN_MIGRATIONS",
    False,
    help="Run `manage.py kodify_migrate` at every start (a first start creates the tables anyway).",
    example="1",
)
REDIS_URL = env.url(
    "REDIS_URL",
    None,
    schemes=("redis", "rediss", "unix"),
    secret=True,
    help="Redis for the cache, the channel layer and the Celery broker. Unset: "
    "in-process cache and channel layer, Celery tasks run eagerly.",
    example="redis://redis:6379/0",
)
REDIS_PREFIX = env.str(
    "KODIFY_REDIS_PREFIX",
    "kodify",
    pattern=(r"[A-Za-z0-9_.-]{1,64}", "up to 64 letters, digits, '_', '.' or '-'"),
    help="Starts the name of everything Kodify keeps in Redis (cache, channel layer, "
    "Celery queues), so that several deployments can share one Redis.",
    example="kodify-staging",
)

# ---------------------------------------------------------------------------------------
env.group = "Journal"

LOGS = env.bool(
    "LOGS",
    False,
    help="Record every API request in the journal (who, what, the prompt and the answer, "
    "timings, tokens). Off by default.",
)
LOGS_DB_HOST = env.str(
    "LOGS_DB_HOST",
    help="PostgreSQL host of the journal's own database. Unset: the journal is kept in the "
    "main database (DB_URL). Only read when LOGS is on.",
    example="postgres-logs",
)
LOGS_DB_PORT = env.int(
    "LOGS_DB_PORT",
    5432,
    minimum=1,
    maximum=65535,
    aliases=("LOGS_DB_POST",),
    help="Port of the journal database (the guide's examples spell it LOGS_DB_POST, "
    "which is accepted with a warning).",
)
LOGS_DB_NAME = env.str(
    "LOGS_DB_NAME",
    help="Name of the journal database; created on first start when the role may.",
    example="kodify_journal",
)
LOGS_DB_USERNAME = env.str(
    "LOGS_DB_USERNAME", help="User of the journal database.", example="kodify"
)
LOGS_DB_PASSWORD = env.str(
    "LOGS_DB_PASSWORD", secret=True, help="Password of the journal database.", example="secret"
)
JOURNAL_RETENTION_DAYS = env.int(
    "JOURNAL_RETENTION_DAYS",
    90,
    minimum=0,
    help="Journal rows older than this many days are deleted by a daily Celery task "
    "(in batches). 0 keeps them for ever.",
    example="365",
)
KODIFY_JOURNAL_QUEUE_SIZE = env.int(
    "KODIFY_JOURNAL_QUEUE_SIZE",
    20000,
    minimum=100,
    help="Records a worker holds in memory for the journal writer; beyond that they go "
    "to the spool file straight away (nothing is dropped).",
)
KODIFY_JOURNAL_BATCH_SIZE = env.int(
    "KODIFY_JOURNAL_BATCH_SIZE",
    500,
    minimum=1,
    maximum=10000,
    help="Journal rows written to the database in one statement.",
)
KODIFY_JOURNAL_FLUSH_SECONDS = env.float(
    "KODIFY_JOURNAL_FLUSH_SECONDS",
    0.5,
    minimum=0.01,
    maximum=60,
    help="Longest time a journal record waits in memory before it is written.",
)
KODIFY_JOURNAL_SPOOL_DIR: Path = env.path(
    "KODIFY_JOURNAL_SPOOL_DIR",
    None,
    base=BASE_DIR,
    help="Folder where journal records wait while the journal database is unreachable; "
    "they are written to the database when it returns. Unset: journal-spool in "
    "KODIFY_DATA_DIR. Keep it on a persistent volume.",
    example="/var/lib/kodify/journal-spool",
) or (KODIFY_DATA_DIR / "journal-spool")
KODIFY_JOURNAL_CONVERTER = env.str(
    "KODIFY_JOURNAL_CONVERTER",
    "process",
    choices=("process", "thread"),
    help="Where journal records become rows (decoding, stream reassembly, secret "
    "masking) and are written: a helper process per server process, off the server's "
    "GIL, or a thread of the server process (no extra process, but it takes CPU from "
    "the requests).",
)
KODIFY_JOURNAL_MAX_TEXT = env.int(
    "KODIFY_JOURNAL_MAX_TEXT",
    200_000,
    minimum=1000,
    help="Longest request body or answer text (characters) kept in a journal row; longer "
    "ones are cut and the row is marked truncated.",
)
KODIFY_JOURNAL_REDACT_SKIP = env.list(
    "KODIFY_JOURNAL_REDACT_SKIP",
    help="Names of built-in secret detectors not to apply (see the console's journal "
    "help page for the list).",
    example="jwt,basic_auth",
)
KODIFY_JOURNAL_REDACT_EXTRA: Path | None = env.path(
    "KODIFY_JOURNAL_REDACT_EXTRA",
    None,
    base=BASE_DIR,
    help="A file of extra secret patterns to mask, one per line as 'name: regular "
    "expression' (lines starting with # are comments).",
    example="/etc/kodify/redact.txt",
)

# ---------------------------------------------------------------------------------------
env.group = "Upstreams (vLLM)"

KODIFY_CONFIG: Path | None = env.path(
    "KODIFY_CONFIG",
    None,
    base=BASE_DIR,
    help="Path of config.yml (upstreams, tabby.model_name). Unset: ./config.yml, then "
    "/vllm-workspace/config.yml, then /opt/mtsai/config.yml.",
    example="/opt/mtsai/config.yml",
)
KODIFY_CONFIG_SEARCH_PATH = (
    Path.cwd() / "config.yml",
    Path("/vllm-workspace/config.yml"),
    Path("/opt/mtsai/config.yml"),
)
KODIFY_UPSTREAMS = env.list(
    "KODIFY_UPSTREAMS",
    help="Upstream base URLs for a quick start without config.yml; added after the "
    "config.yml ones.",
    example="http://127.0.0.1:8001,http://127.0.0.1:8002",
)
KODIFY_UPSTREAM_API_KEY = env.str(
    "KODIFY_UPSTREAM_API_KEY",
    None,
    secret=True,
    help="Key sent to upstreams that have no api_key of their own in config.yml "
    "(before VLLM_API_KEY).",
    example="(the key vLLM was started with)",
)
KODIFY_UPSTREAM_CONNECT_TIMEOUT = env.float(
    "KODIFY_UPSTREAM_CONNECT_TIMEOUT",
    5.0,
    minimum=0.1,
    help="Seconds to open a connection to an upstream.",
)
KODIFY_UPSTREAM_FIRST_BYTE_TIMEOUT = env.float(
    "KODIFY_UPSTREAM_FIRST_BYTE_TIMEOUT",
    300.0,
    minimum=0.1,
    help="Seconds from sending a request to the upstream's response headers (a "
    "non-streamed answer arrives whole, so this bounds its generation time).",
)
KODIFY_UPSTREAM_IDLE_TIMEOUT = env.float(
    "KODIFY_UPSTREAM_IDLE_TIMEOUT",
    120.0,
    minimum=0.1,
    help="Seconds of silence allowed between two chunks of an upstream's answer.",
)
KODIFY_UPSTREAM_COOLDOWN = env.float(
    "KODIFY_UPSTREAM_COOLDOWN",
    2.0,
    minimum=0.1,
    help="Seconds a replica rests after it failed a request before the first byte "
    "(refused, timed out, 5xx); doubled for each failure in a row. A successful health "
    "check ends the rest.",
)
KODIFY_UPSTREAM_COOLDOWN_MAX = env.float(
    "KODIFY_UPSTREAM_COOLDOWN_MAX",
    60.0,
    minimum=0.1,
    help="The longest rest of a failing replica, in seconds.",
)
KODIFY_MODEL_REFRESH_INTERVAL = env.float(
    "KODIFY_MODEL_REFRESH_INTERVAL",
    30.0,
    minimum=1.0,
    help="Seconds between two readings of each upstream's /health and /v1/models.",
)
KODIFY_CONFIG_POLL_INTERVAL = env.float(
    "KODIFY_CONFIG_POLL_INTERVAL",
    2.0,
    minimum=0.1,
    help="Seconds between two looks of each worker at the console's changes and the "
    "stored health checks (a cache read; the database is read only when they changed).",
)
WAIT_VLLM = env.bool(
    "WAIT_VLLM",
    False,
    help="At start, wait for the first upstream before serving.",
)
WAIT_VLLM_ATTEMPTS = env.int(
    "WAIT_VLLM_ATTEMPTS",
    5,
    minimum=1,
    help="How many times WAIT_VLLM tries the first upstream.",
)
WAIT_VLLM_TIMEOUT = env.float(
    "WAIT_VLLM_TIMEOUT",
    10.0,
    minimum=0.0,
    help="Seconds between two WAIT_VLLM attempts.",
)

# ---------------------------------------------------------------------------------------
env.group = "Requests and generation"

MAX_N = env.int(
    "MAX_N",
    10,
    minimum=1,
    help="Largest `n` (answers per request) a client may ask for.",
)
COMPLETIONS_PREPROCESSING_CONFIG = env.str(
    "COMPLETIONS_PREPROCESSING_CONFIG",
    None,
    help="Fill-in-the-middle config for autocompletion: a path (relative ones from the "
    "project directory) or a shipped config's name. Unset: chosen from the served "
    "model's name (qwen, deepseek, codellama, starcoder, codestral), else generic. An "
    "upstream's 'preprocessing' option in config.yml wins over it.",
    example="preprocess_configs/qwen.json",
)
KODIFY_MAX_BODY_BYTES = env.int(
    "KODIFY_MAX_BODY_BYTES",
    8 * 1024 * 1024,
    minimum=1024,
    help="Largest request body accepted, in bytes; larger ones get 413.",
    example="16777216",
)
KODIFY_HEADER_TIMEOUT = env.float(
    "KODIFY_HEADER_TIMEOUT",
    15.0,
    minimum=1,
    help="Seconds a client has to send a request's headers, from the connection's start "
    "(or the request's first byte on a kept-alive connection); a slower one gets 408 "
    "and is disconnected (uvicorn through kodify_site.http_protocol).",
)
KODIFY_BODY_TIMEOUT = env.float(
    "KODIFY_BODY_TIMEOUT",
    60.0,
    minimum=1,
    help="Seconds a client has to send a request's body once its headers are in; a "
    "slower one gets 408 and is disconnected.",
)

# ---------------------------------------------------------------------------------------
env.group = "Metrics"

KODIFY_METRICS_TOKEN = env.str(
    "KODIFY_METRICS_TOKEN",
    None,
    secret=True,
    help="Token for GET /metrics (Prometheus), sent as 'Authorization: Bearer <token>' "
    "(the scrape job's authorization credentials). When set, every client needs it, "
    "local ones too. Unset: see KODIFY_METRICS_PUBLIC.",
    example="(a long random string)",
)
KODIFY_METRICS_PUBLIC = env.bool(
    "KODIFY_METRICS_PUBLIC",
    False,
    help="Without KODIFY_METRICS_TOKEN: true serves /metrics to anyone who can reach "
    "the server; false serves it only to clients on this machine (127.0.0.1 or ::1, "
    "with no X-Forwarded-For, Forwarded or X-Real-IP header) and answers 403 to the "
    "others. A reverse proxy on this machine that adds none of those headers makes "
    "every client look local: give /metrics a token then.",
)
KODIFY_METRICS_DIR: Path = env.path(
    "KODIFY_METRICS_DIR",
    None,
    base=BASE_DIR,
    help="Folder where each server process keeps its metric values (a file of its own, "
    "rewritten every second), so that /metrics adds up every worker; emptied when the "
    "first process of a server starts. Unset: metrics/ in KODIFY_DATA_DIR. A local disk "
    "(tmpfs is best) and one per server: never shared between machines or servers.",
    example="/run/kodify/metrics",
) or (KODIFY_DATA_DIR / "metrics")

# Everything the readers above found wrong; reported by kodify_site.checks.
ENV_PROBLEMS = tuple(env.problems)
ENV_WARNINGS = tuple(dict.fromkeys(env.warnings))
ENV_VARIABLES = env.variables
