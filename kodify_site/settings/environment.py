"""What the environment says about the server itself: hosts, HTTPS, keys, access, databases.

With ``serving.py`` (the journal, the upstreams, requests, metrics), the only modules that
read the environment, through the typed readers of ``env.py`` and one shared ``env``
(which keeps every variable for the reference and every problem for the checks);
``framework.py`` builds Django's own settings from what they find.
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
        help="Origins allowed to post console forms and to open the live journal's "
        "WebSocket when the console is behind a proxy that changes the scheme or port.",
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
