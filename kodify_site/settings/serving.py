"""What the environment says about serving requests: the journal, the upstreams (vLLM),
limits on requests, and metrics.  Read after ``environment.py``, with its ``env``.
"""

from __future__ import annotations

from pathlib import Path

from kodify_site.settings.environment import BASE_DIR, KODIFY_DATA_DIR, env

# ---------------------------------------------------------------------------------------
env.group = "Journal"

LOGS = env.bool(
    "LOGS",
    False,
    help="Record every API request in the journal (who, what, the prompt and the answer, "
    "timings, tokens). Off by default.",
)
# The journal's own database matters only with the journal on: while LOGS is off, a value
# left from the guide's examples (LOGS_DB_POST=<PORT>) must not stop the start.
with env.only_when("LOGS", LOGS):
    LOGS_DB_HOST = env.str(
        "LOGS_DB_HOST",
        # libpq's host: names, addresses, a socket folder, or several of them with commas.
        pattern=(r"[A-Za-z0-9._:%,/\[\]-]+", "a host name, an IP address or a socket folder"),
        help="PostgreSQL host of the journal's own database. Unset: the journal is kept in "
        "the main database (DB_URL).",
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
        "LOGS_DB_PASSWORD",
        secret=True,
        help="Password of the journal database.",
        example="secret",
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
KODIFY_PREFIX_AFFINITY = env.bool(
    "KODIFY_PREFIX_AFFINITY",
    False,
    help="Send requests whose prompts start alike (a caller's completions in one document, "
    "chats with the same first messages) to the same replica of their model, so that "
    "vLLM's prefix cache is reused; a replica above its bounded load passes them on. "
    "Off: the least busy replica. The console can switch it per model (Models).",
)
KODIFY_AFFINITY_EPSILON = env.float(
    "KODIFY_AFFINITY_EPSILON",
    0.25,
    minimum=0.0,
    help="With KODIFY_PREFIX_AFFINITY: how far above its share of the outstanding requests "
    "(by weight) a replica may go before its keys spill to the next replica.",
)
KODIFY_SUPERSEDE = env.bool(
    "KODIFY_SUPERSEDE",
    True,
    help="When a Tabby completion arrives from the same caller for the same document while "
    "an earlier one is still being generated, cancel the earlier one upstream and answer "
    "it with no completion (the developer typed on); counted in /metrics. Per worker.",
)
KODIFY_ACTION_MODELS = env.bool(
    "KODIFY_ACTION_MODELS",
    True,
    help="List in /v1/models, per chat model, one model per assistant action "
    "(`<model>:docs`, `:fix`, `:tests`, `:explain`): a chat request to one gets the "
    "action's template applied to its last message, so that any OpenAI-compatible plugin "
    "gets the server's actions. Off: not listed nor recognised (/v1/actions/... stays).",
)
KODIFY_ACTION_MAX_CHARS = env.int(
    "KODIFY_ACTION_MAX_CHARS",
    200_000,
    minimum=1000,
    help="Largest code plus context an assistant action takes, in characters; more gets 400.",
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
