"""Drive the real Tabby client, tabby-agent, as an editor would: over LSP on its stdio.

Tabby's IDE plugins embed tabby-agent (``npm install tabby-agent``); ``make
install-tabby-agent`` puts version :data:`VERSION` into the virtualenv.  This module is a
minimal LSP client for it: Content-Length framing, numbered requests, a reader thread that
answers the agent's own requests (``workspace/configuration``…) with nulls so it never
stalls, and a record of everything it says for the assertion messages.

:class:`TabbyAgent` runs the agent with a HOME of its own, holding the ``config.toml``
that points it at a server, and a preloaded script that refuses every connection beyond
loopback: tests never reach the internet, whatever the agent would like to call.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from kodify_site.testing import WAIT_S, wait_until

log = logging.getLogger(__name__)

VERSION = "1.5.0"
INSTALL_DIR = Path(sys.prefix) / "tabby-agent"  # the Makefile's $(VENV)/tabby-agent
CLI = INSTALL_DIR / "node_modules" / "tabby-agent" / "dist" / "cli.js"

# Preloaded with `node --require`: any connection but to loopback fails at once.
LOOPBACK_ONLY_JS = r"""
"use strict";
const dns = require("dns");
const net = require("net");
const LOOPBACK = new Set(["127.0.0.1", "::1", "::ffff:127.0.0.1", "localhost"]);
const isLoopback = (host) => LOOPBACK.has(String(host).replace(/^\[|\]$/g, "").toLowerCase());
const refused = (host) =>
  Object.assign(new Error(`connection to ${host} refused: loopback only under test`), {
    code: "ECONNREFUSED",
  });
// As net's normalizeArgs reads them: (options), ([options, cb]), (path) or (port, host).
function targetHost(args) {
  const first = Array.isArray(args[0]) ? args[0][0] : args[0];
  if (first !== null && typeof first === "object") {
    return first.path ? null : (first.host ?? "localhost");
  }
  if (typeof first === "string" && Number.isNaN(Number(first))) return null; // a pipe
  return typeof args[1] === "string" ? args[1] : "localhost";
}
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  const host = targetHost(args);
  if (host !== null && !isLoopback(host)) {
    process.nextTick(() => this.destroy(refused(host)));
    return this;
  }
  return connect.apply(this, args);
};
const lookup = dns.lookup;
dns.lookup = function (hostname, ...rest) {
  if (isLoopback(hostname)) return lookup.call(this, hostname, ...rest);
  const callback = rest[rest.length - 1];
  process.nextTick(() => callback(refused(hostname)));
  return {};
};
const lookupPromise = dns.promises.lookup;
dns.promises.lookup = async (hostname, ...rest) => {
  if (isLoopback(hostname)) return lookupPromise(hostname, ...rest);
  throw refused(hostname);
};
"""


def missing_reason() -> str | None:
    """Why tabby-agent cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not CLI.is_file():
        return f"tabby-agent {VERSION} is not installed in {INSTALL_DIR}"
    return None


def loopback_only_script(directory: Path) -> Path:
    """Write the network guard into ``directory``; its path, for ``node --require``."""
    script = directory / "loopback-only.js"
    script.write_text(LOOPBACK_ONLY_JS, encoding="utf-8")
    return script


class LspError(RuntimeError):
    pass


class LspClient:
    """JSON-RPC over a subprocess's stdin/stdout, with LSP's Content-Length framing."""

    def __init__(self, command: list[str], *, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.notifications: list[dict[str, Any]] = []
        self.server_requests: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._responses: dict[int, dict[str, Any]] = {}
        self._next_id = 0
        self._closed = False
        self._changed = threading.Condition()
        self._write_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read_messages, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # -- sending -------------------------------------------------------------------------

    def request(self, method: str, params: Any, *, timeout: float = WAIT_S) -> Any:
        """Send a request and wait up to ``timeout`` seconds for its result."""
        with self._changed:
            self._next_id += 1
            ident = self._next_id
        self._send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
        response = self._wait_for_response(ident, method, timeout)
        if "error" in response:
            raise LspError(f"{method} failed: {response['error']}")
        return response.get("result")

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode("utf-8")
        stdin = self.process.stdin
        assert stdin is not None
        log.debug("→ %s", body.decode())
        with self._write_lock:
            try:
                stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
                stdin.flush()
            except (BrokenPipeError, ValueError) as error:
                raise LspError(f"the server is gone ({error})\n{self.transcript()}") from None

    def _wait_for_response(self, ident: int, method: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while ident not in self._responses:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    break
                self._changed.wait(remaining)
            response = self._responses.pop(ident, None)
        if response is not None:
            return response
        if not self._closed:
            self.notify("$/cancelRequest", {"id": ident})
        why = "the server exited" if self._closed else f"no answer in {timeout:g} s"
        raise LspError(f"{method}: {why}\n{self.transcript()}")

    # -- receiving -----------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds (checked on each message) or time runs out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def _read_messages(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while (message := _read_frame(stdout)) is not None:
                self._dispatch(message)
        except (OSError, ValueError) as error:
            log.debug("reading the server's output failed: %s", error)
        finally:
            with self._changed:
                self._closed = True
                self._changed.notify_all()

    def _dispatch(self, message: dict[str, Any]) -> None:
        log.debug("← %s", json.dumps(message))
        if "method" in message and "id" in message:
            # The server asks something of the editor: answer so that it does not wait.
            with self._changed:
                self.server_requests.append(message)
            result: Any = None
            if message["method"] == "workspace/configuration":
                result = [None] * len((message.get("params") or {}).get("items") or [])
            self._send({"jsonrpc": "2.0", "id": message["id"], "result": result})
            return
        with self._changed:
            if "method" in message:
                self.notifications.append(message)
            elif isinstance(message.get("id"), int):
                self._responses[message["id"]] = message
            self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            text = line.decode("utf-8", "replace").rstrip()
            log.debug("stderr: %s", text)
            with self._changed:
                self.stderr.append(text)

    # -- the end -------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """LSP's shutdown and exit, then kill the process if it is still there."""
        if self.process.poll() is None and not self._closed:
            try:
                self.request("shutdown", None, timeout=timeout)
                self.notify("exit", None)
            except LspError as error:
                log.debug("no clean shutdown: %s", error)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def transcript(self, lines: int = 40) -> str:
        """The end of what the server said (stderr and notifications), for messages."""
        with self._changed:
            said = [*self.stderr, *(json.dumps(n) for n in self.notifications)]
        return "\n".join(said[-lines:])


def _read_frame(stream: IO[bytes]) -> dict[str, Any] | None:
    """One message from ``stream``, or None at its end."""
    length: int | None = None
    while True:
        line = stream.readline()
        if not line:
            return None
        if not line.strip():
            break
        name, _, value = line.decode("ascii").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length is None:
        raise ValueError("an LSP message without Content-Length")
    body = stream.read(length)
    if len(body) < length:
        return None
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError(f"not a JSON-RPC message: {message!r}")
    return message


def position_of(text: str, offset: int) -> dict[str, int]:
    """The LSP position (line, UTF-16 column) of ``offset`` in ``text``."""
    line_start = text.rfind("\n", 0, offset) + 1
    column = len(text[line_start:offset].encode("utf-16-le")) // 2
    return {"line": text.count("\n", 0, offset), "character": column}


class TabbyAgent:
    """tabby-agent in LSP mode, configured for ``endpoint`` and ``token``.

    ``home`` becomes its HOME: its config, data and logs (debug level) live there.
    """

    def __init__(self, endpoint: str, token: str, home: Path) -> None:
        self.endpoint = endpoint
        self.token = token
        self.home = home
        self.client: LspClient | None = None
        self.server_info: dict[str, Any] = {}

    def start(self, timeout: float = WAIT_S) -> TabbyAgent:
        """Start the agent and do LSP's handshake.

        tabby-agent 1.5.0 answers ``initialize`` once it has read its config and called
        the server's ``/v1/health``: then its status is known, and a status other than
        "ready" has been told in a ``window/showMessage`` (see :meth:`warnings`).
        """
        reason = missing_reason()
        if reason is not None:
            raise LspError(reason)
        config = self.home / ".tabby-client" / "agent" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "[server]\n"
            f"endpoint = {json.dumps(self.endpoint)}\n"
            f"token = {json.dumps(self.token)}\n"
            "requestTimeout = 20000\n\n"
            '[logs]\nlevel = "debug"\n\n'
            "[anonymousUsageTracking]\ndisable = true\n",
            encoding="utf-8",
        )
        guard = loopback_only_script(self.home)
        env = {key: value for key, value in os.environ.items() if key != "NODE_OPTIONS"}
        env["HOME"] = str(self.home)
        command = ["node", "--require", str(guard), str(CLI), "--lsp", "--stdio"]
        self.client = LspClient(command, env=env, cwd=self.home)
        result = self.client.request(
            "initialize",
            {
                "processId": os.getpid(),
                "clientInfo": {"name": "kodify-tests", "version": "1.0"},
                "rootUri": None,
                "workspaceFolders": None,
                "capabilities": {
                    "workspace": {"configuration": True},
                    "textDocument": {
                        "synchronization": {"dynamicRegistration": False},
                        "completion": {
                            "completionItem": {"snippetSupport": False},
                            "contextSupport": True,
                        },
                    },
                    "window": {"showMessage": {}},
                },
            },
            timeout=timeout,
        )
        self.server_info = result.get("serverInfo") or {}
        self.client.notify("initialized", {})
        return self

    @property
    def lsp(self) -> LspClient:
        if self.client is None:
            raise LspError("the agent is not started")
        return self.client

    def warnings(self) -> list[str]:
        """What the agent told the editor to show (e.g. "Tabby agent status: unauthorized")."""
        return [
            str(n["params"].get("message"))
            for n in self.lsp.notifications
            if n["method"] == "window/showMessage"
        ]

    def open(self, uri: str, language_id: str, text: str) -> None:
        document = {"uri": uri, "languageId": language_id, "version": 1, "text": text}
        self.lsp.notify("textDocument/didOpen", {"textDocument": document})

    def complete(
        self, uri: str, position: dict[str, int], *, timeout: float = WAIT_S, attempts: int = 3
    ) -> list[dict[str, Any]]:
        """The completion items at ``position``, asked again while the answer is empty.

        An empty answer is what the agent gives when its request to the server failed
        (it then checks the server's health again); attempts stop at the first items,
        after ``attempts`` tries, at ``timeout`` overall, or at a status warning.
        """
        deadline = time.monotonic() + timeout
        params = {
            "textDocument": {"uri": uri},
            "position": position,
            "context": {"triggerKind": 1},  # invoked
        }
        items: list[dict[str, Any]] = []
        for _ in range(attempts):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.warnings():
                break
            result = self.lsp.request("textDocument/completion", params, timeout=remaining)
            items = result.get("items", []) if isinstance(result, dict) else result or []
            if items:
                break
        return items

    def _log_text(self) -> str:
        logs = self.home / ".tabby-client" / "agent" / "logs"
        files = sorted(path for path in logs.glob("*.log") if not path.is_symlink())
        return "".join(path.read_text(encoding="utf-8", errors="replace") for path in files)

    def log_entries(self, message: str) -> list[dict[str, Any]]:
        """The entries of the agent's debug log (JSON lines) whose message is ``message``.

        The log shows what the agent sent and received: "Completion request" has the
        body in ``requestOptions.body``, "Completion response" the answer in
        ``response.data``.
        """
        entries = []
        for line in self._log_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # the line being written
            if isinstance(entry, dict) and entry.get("msg") == message:
                entries.append(entry)
        return entries

    def wait_for_log_entry(
        self, message: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT_S
    ) -> dict[str, Any] | None:
        """The first ``message`` entry that satisfies ``predicate``, once it is written."""
        found = wait_until(
            lambda: [entry for entry in self.log_entries(message) if predicate(entry)], timeout
        )
        return found[0] if found else None

    def log_tail(self, chars: int = 6000) -> str:
        """The end of the agent's own log and of what it said on the wire."""
        said = self.client.transcript() if self.client is not None else ""
        return f"{self._log_text()[-chars:]}\n--- stderr and notifications ---\n{said}"

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()


def inserted_text(item: dict[str, Any]) -> str:
    """What accepting a completion item puts in the document."""
    edit = item.get("textEdit")
    if isinstance(edit, dict):
        return str(edit["newText"])
    return str(item.get("insertText") or item["label"])
