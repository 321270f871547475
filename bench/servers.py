"""The processes a bench run starts: the fake vLLM upstream and Kodify under uvicorn.

Each is a child of this process with its output read by a thread, so that a full pipe
never stalls a server under load and its log is at hand when something goes wrong.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from bench.cpu import processes, tree_seconds

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# uvicorn logs the first after the application's lifespan startup but before it binds its
# socket (one worker binds in uvicorn's Server.startup); the second once it listens.
UVICORN_READY = ("Application startup complete", "Uvicorn running on")

# Settings a developer's shell may hold that would change what is measured (a real
# database, authentication, another upstream): the servers start from the defaults.
_SCRUB_PREFIXES = (
    "KODIFY_", "MTSAI_", "AUTH_TYPE", "VLLM_", "WAIT_VLLM", "MAX_N", "LOGS", "USERS_TABLE",
    "RUN_MIGRATIONS", "COMPLETIONS_PREPROCESSING_CONFIG",
)  # fmt: skip
_SCRUB_NAMES = ("DB_URL", "REDIS_URL")


class StartupError(RuntimeError):
    """A server did not come up; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrubbed(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        key: value
        for key, value in environ.items()
        if not key.startswith(_SCRUB_PREFIXES) and key not in _SCRUB_NAMES
    }


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    env = scrubbed(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"  # the readiness line must reach us when it is printed
    env.update(extra)
    return env


class ServerProcess:
    """A started server: its process and the lines it has printed (the last few thousand)."""

    def __init__(self, name: str, argv: list[str], cwd: Path, env: Mapping[str, str]) -> None:
        self.name = name
        # Bounded so that a server printing a traceback per request cannot exhaust memory.
        self.lines: deque[str] = deque(maxlen=100_000)
        self.printed = 0  # lines printed in all, kept or not
        self.ready_at_line = 0  # lines before this one were printed during startup
        self._changed = threading.Condition()
        self._ended = False
        cwd.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._pump, name=f"{name}-output", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self.printed += 1
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for_lines(self, markers: Sequence[str], timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Return once the process has printed lines containing each marker, in order."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: self._ended or _in_order(markers, self.lines), timeout
            )
            if found and not self._ended:
                self.ready_at_line = self.printed
                return
        self.stop()
        why = "exited" if self._ended else f"printed no {markers!r} within {timeout:g} s"
        raise StartupError(f"{self.name} {why}:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process and its children have used (Linux /proc;
        else 0): the journal's helper process is part of what a request costs."""
        return tree_seconds(self.process.pid, processes())

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, count: int = 40) -> str:
        return "".join(list(self.lines)[-count:])

    def lines_after_startup(self) -> list[str]:
        """What it printed since it was ready (the newest 100,000 lines at most)."""
        with self._changed:
            count = min(self.printed - self.ready_at_line, len(self.lines))
            return list(self.lines)[len(self.lines) - count :]

    def stop(self) -> None:
        """SIGINT (a graceful shutdown for uvicorn and aiohttp), then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)  # it ends at the pipe's end, which the process's exit brings
        if not self._reader.is_alive() and self.process.stdout is not None:
            self.process.stdout.close()


def _in_order(markers: Sequence[str], lines: Iterable[str]) -> bool:
    pending = iter(markers)
    marker = next(pending, None)
    for line in lines:
        if marker is not None and marker in line:
            marker = next(pending, None)
    return marker is None


def start_fake_upstream(
    workdir: Path, chunks: int, models: Sequence[str] = ()
) -> tuple[ServerProcess, str]:
    """The fake vLLM, serving ``models`` in that order (its default model when empty)."""
    port = free_port()
    argv = [
        sys.executable, "-m", "gateway.tests.fake_upstream",
        "--host", "127.0.0.1", "--port", str(port), "--chunks", str(chunks),
    ]  # fmt: skip
    for model in models:
        argv += ["--model", model]
    server = ServerProcess("fake upstream", argv, workdir, child_environment({}))
    url = f"http://127.0.0.1:{port}"
    wait_for_health(server, url + "/health")
    return server, url


def wait_for_health(server: ServerProcess, url: str, timeout: float = STARTUP_TIMEOUT_S) -> None:
    """Poll ``url`` until it answers 200; the fake prints nothing when it is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        try:  # a short wait on the process doubles as the pause between polls
            server.process.wait(0.05)
        except subprocess.TimeoutExpired:
            continue
        raise StartupError(f"{server.name} exited:\n{server.tail()}")
    server.stop()
    raise StartupError(f"{server.name} did not answer {url} within {timeout:g} s")


def kodify_environment(
    workdir: Path, upstream_url: str, extra_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    return child_environment(
        {
            "KODIFY_UPSTREAMS": upstream_url,
            "KODIFY_DATA_DIR": str(workdir / "data"),
            "KODIFY_SECRET_KEY": "bench-secret-key-" + "x" * 40,
            # wrk sends the same Tabby body from every connection at once: one caller, one
            # document.  Superseding would answer most of them empty, unmeasured.
            "KODIFY_SUPERSEDE": "false",
            **(extra_env or {}),
        }
    )


def start_kodify(
    workdir: Path,
    upstream_url: str,
    extra_env: Mapping[str, str] | None = None,
    name: str = "Kodify",
) -> tuple[ServerProcess, str]:
    """Kodify on one uvicorn worker, started exactly as production starts it."""
    port = free_port()
    argv = [
        sys.executable, "-m", "kodify_site.serve",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = kodify_environment(workdir, upstream_url, extra_env)
    server = ServerProcess(name, argv, workdir, env)
    server.wait_for_lines(UVICORN_READY)
    return server, f"http://127.0.0.1:{port}"


PER_USER_ENV = {"MTSAI_AUTH": "true", "AUTH_TYPE": "DB"}
# Limits high enough never to refuse the load, yet set, so that every request goes
# through the limiter as a real user's would (the defaults, 600/min and 16 at once,
# would refuse most of it).
BENCH_USER_LIMITS = {"requests_per_minute": 1_000_000_000, "max_concurrent": 1000}
_TOKEN_MARK = "KODIFY_BENCH_TOKEN="
_CREATE_TOKEN = f"""
from accounts import services
user = services.create_user(username="bench", **{BENCH_USER_LIMITS!r})
_, plain = services.issue_token(user=user, name="bench")
print({_TOKEN_MARK!r} + plain)
"""


def migrate(workdir: Path, env: Mapping[str, str]) -> None:
    """Create the server's own SQLite database (``env``'s KODIFY_DATA_DIR), as
    ``make run`` does before the server starts."""
    workdir.mkdir(parents=True, exist_ok=True)
    manage = [sys.executable, str(REPO / "manage.py")]
    _manage(workdir, env, [*manage, "kodify_migrate", "--verbosity", "0"])


def create_token(workdir: Path, env: Mapping[str, str]) -> str:
    """Migrate the server's own SQLite database and issue a token in it; returns the token."""
    migrate(workdir, env)
    manage = [sys.executable, str(REPO / "manage.py")]
    output = _manage(workdir, env, [*manage, "shell", "--no-imports", "-c", _CREATE_TOKEN])
    for line in output.splitlines():
        if line.startswith(_TOKEN_MARK):
            return line[len(_TOKEN_MARK) :]
    raise StartupError(f"no token in the output of the shell snippet:\n{output}")


def _manage(workdir: Path, env: Mapping[str, str], argv: list[str]) -> str:
    done = subprocess.run(
        argv, cwd=workdir, env=dict(env), capture_output=True, text=True, check=False,
        timeout=STARTUP_TIMEOUT_S,
    )  # fmt: skip
    if done.returncode:
        raise StartupError(f"manage.py {argv[2]} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def start_kodify_per_user(
    workdir: Path,
    upstream_url: str,
    extra_env: Mapping[str, str] | None = None,
    name: str = "Kodify per-user",
) -> tuple[ServerProcess, str, str]:
    """Kodify in per-user mode, with a user and token made in its own database first."""
    extra = {**PER_USER_ENV, **(extra_env or {})}
    token = create_token(workdir, kodify_environment(workdir, upstream_url, extra))
    server, url = start_kodify(workdir, upstream_url, extra, name=name)
    return server, url, token


def start_ceiling(workdir: Path, upstream_url: str) -> tuple[ServerProcess, str]:
    """The bare-ASGI relay (``bench.ceiling``) under uvicorn with Kodify's flags, one worker."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "bench.ceiling:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--loop", "uvloop", "--http", "httptools", "--no-access-log",
    ]  # fmt: skip
    env = child_environment({"KODIFY_BENCH_UPSTREAM": upstream_url})
    server = ServerProcess("bare ASGI", argv, workdir, env)
    server.wait_for_lines(UVICORN_READY)
    return server, f"http://127.0.0.1:{port}"


LITELLM_MASTER_KEY = "sk-kodify-bench-" + "0123456789abcdef" * 2


def start_litellm(
    workdir: Path, python: str, upstream_url: str, models: Sequence[str]
) -> tuple[ServerProcess, str]:
    """LiteLLM's proxy from its own venv: one worker, a master key, no database, the same
    fake upstream behind it for every model (its documented minimal production set-up)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "litellm.yaml"
    entries = "".join(
        f"  - model_name: {model}\n"
        f"    litellm_params:\n"
        f"      model: openai/{model}\n"
        f"      api_base: {upstream_url}/v1\n"
        f"      api_key: unused\n"
        for model in models
    )
    config.write_text(f"model_list:\n{entries}")
    port = free_port()
    argv = [
        str(Path(python).with_name("litellm")), "--config", str(config),
        "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1",
    ]  # fmt: skip
    env = child_environment(
        {"LITELLM_MASTER_KEY": LITELLM_MASTER_KEY, "LITELLM_LOG": "ERROR", "DO_NOT_TRACK": "1"}
    )
    for name in ("DATABASE_URL", "LITELLM_TELEMETRY"):
        env.pop(name, None)
    env["LITELLM_TELEMETRY"] = "False"
    server = ServerProcess("LiteLLM", argv, workdir, env)
    url = f"http://127.0.0.1:{port}"
    wait_for_health(server, url + "/health/liveliness", timeout=180)
    return server, url
