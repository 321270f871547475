"""The real Tabby client against Kodify: tabby-agent, as Tabby's IDE plugins embed it.

One Kodify (one-token mode) over a fake vLLM serving a Qwen coder model; one tabby-agent
(``make install-tabby-agent``), driven over LSP by ``gateway/tests/tabby_agent.py``, opens
a file in each language with the cursor in a function body and asks for a completion.
The fake model says what a small model would: the right code, then more than it should.
The editor must get only the right code, and the model must have been given Qwen's
fill-in-the-middle prompt made of the file around the cursor.

Not a smoke test: it needs node and the agent (the PostgreSQL run has them).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer
from gateway.tests.tabby_agent import (
    TabbyAgent,
    inserted_text,
    loopback_only_script,
    missing_reason,
    position_of,
)
from kodify_site.testing import WAIT_S, KodifyServer

KEY = "tabby-agent-shared-token-0123456789"
MODEL = "qwen2.5-coder-test"  # a Qwen name: Kodify picks Qwen's FIM template
CURSOR = "‸"


@dataclass(frozen=True)
class Case:
    language: str  # VS Code's language id, which Tabby's plugins send
    filename: str
    marker: str  # in this file only: tells its prompt apart
    source: str  # the file, with CURSOR where the cursor is
    model_text: str  # what the fake model answers to this file's prompt
    expected: str  # what the editor should insert

    @property
    def text(self) -> str:
        return self.source.replace(CURSOR, "")

    @property
    def offset(self) -> int:
        return self.source.index(CURSOR)

    @property
    def uri(self) -> str:
        return f"file:///work/project/{self.filename}"


CASES = [
    Case(
        "python",
        "calc.py",
        "def add(a, b):",
        "import math\n\n\ndef area(radius: float) -> float:\n    return math.pi * radius**2\n"
        f"\n\ndef add(a, b):\n    {CURSOR}\n\n\n"
        'if __name__ == "__main__":\n    print(add(2, 3))\n',
        # Past the end of the function, then past a blank line into the next definition.
        "return a + b\nprint(add(1, 2))\n\ndef unrelated():\n    pass\n",
        "return a + b",
    ),
    Case(
        "csharp",
        "Cart.cs",
        "public void Add(",
        "using System;\n\nnamespace Shop\n{\n    public class Cart\n    {\n"
        "        private decimal _total;\n\n"
        "        public void Add(decimal price, int quantity)\n        {\n"
        f"            {CURSOR}\n        }}\n\n"
        "        public decimal Total => _total;\n    }\n}\n",
        # The closing brace that already follows the cursor, typed again.
        "_total += price * quantity;\n        }\n\n        public decimal Total => _total;\n",
        "_total += price * quantity;",
    ),
    Case(
        "java",
        "Stats.java",
        "int total = 0;",
        "package shop;\n\nimport java.util.List;\n\npublic class Stats {\n"
        "    public static int sum(List<Integer> values) {\n        int total = 0;\n"
        f"        {CURSOR}\n    }}\n\n"
        "    public static int max(List<Integer> values) {\n"
        "        return values.stream().max(Integer::compare).orElse(0);\n    }\n}\n",
        # A whole block, then the ends of the method and of the class.
        "for (int value : values) {\n            total += value;\n        }\n"
        "        return total;\n    }\n}\n",
        "for (int value : values) {\n            total += value;\n        }\n        return total;",
    ),
    Case(
        "go",
        "mathx/divide.go",
        "func Divide(",
        'package mathx\n\nimport "errors"\n\n'
        "// Divide returns a / b, or an error when b is zero.\n"
        f"func Divide(a, b int) (int, error) {{\n\t{CURSOR}\n}}\n\n"
        "func Square(x int) int {\n\treturn x * x\n}\n",
        'if b == 0 {\n\t\treturn 0, errors.New("division by zero")\n\t}\n'
        "\treturn a / b, nil\n}\n\nfunc main() {\n",
        'if b == 0 {\n\t\treturn 0, errors.New("division by zero")\n\t}\n\treturn a / b, nil',
    ),
    Case(
        "javascript",
        "cart.js",
        "function totalPrice(",
        '"use strict";\n\n/** The price of all the items in the cart. */\n'
        f"function totalPrice(items) {{\n  return items.reduce({CURSOR}, 0);\n}}\n\n"
        "module.exports = { totalPrice };\n",
        # Mid-line: one line only, without the `, 0);` that already follows the cursor.
        "(sum, item) => sum + item.price * item.quantity, 0);\n}\n",
        "(sum, item) => sum + item.price * item.quantity",
    ),
]


def model_text(body: dict[str, Any]) -> str:
    prompt = str(body.get("prompt"))
    for case in CASES:
        if case.marker in prompt:
            return case.model_text
    return ""


@pytest.fixture(scope="module")
def agent_installed() -> None:
    """Skip without the agent on a workstation; fail in CI, where it must be there."""
    missing = missing_reason()
    if missing is None:
        return
    reason = f"{missing}: run `make install-tabby-agent`"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream(models=(MODEL,), completion_text=model_text)
    server = FakeUpstreamServer(upstream).start()
    upstream.url = server.url  # type: ignore[attr-defined]
    yield upstream
    server.stop()


@pytest.fixture(scope="module")
def server(agent_installed: None, module_kodify_server: Any, fake: FakeUpstream) -> KodifyServer:
    return module_kodify_server(
        {
            "KODIFY_UPSTREAMS": fake.url,  # type: ignore[attr-defined]
            "KODIFY_UPSTREAM_API_KEY": "",
            "VLLM_API_KEY": KEY,
        }
    )


@pytest.fixture(scope="module")
def agent(server: KodifyServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TabbyAgent]:
    agent = TabbyAgent(server.url, KEY, tmp_path_factory.mktemp("tabby-home"))
    try:
        agent.start()
        yield agent
    finally:
        agent.stop()


def test_the_agent_starts_connected(agent: TabbyAgent) -> None:
    assert agent.server_info == {"name": "tabby-agent", "version": "1.5.0"}
    assert agent.warnings() == [], agent.log_tail()  # "status: disconnected" else


@pytest.mark.parametrize("case", CASES, ids=[case.language for case in CASES])
def test_the_agent_gets_a_cleaned_completion(
    agent: TabbyAgent, fake: FakeUpstream, case: Case
) -> None:
    agent.open(case.uri, case.language, case.text)
    position = position_of(case.text, case.offset)
    items = agent.complete(case.uri, position)
    assert items, f"no completion for {case.language}:\n{agent.log_tail()}"
    assert inserted_text(items[0]) == case.expected, agent.log_tail()
    assert items[0]["textEdit"]["range"]["start"] == position
    prefix, suffix = case.text[: case.offset], case.text[case.offset :]
    # What the agent sent and what Kodify answered, as the agent's debug log has them:
    # the text was cleaned by Kodify, the agent passed it on as it came.
    completion_id = items[0]["data"]["completionId"]
    assert completion_id.startswith("cmpl-")
    answer = agent.wait_for_log_entry(
        "Completion response", lambda e: e["response"]["data"]["id"] == completion_id
    )
    assert answer is not None, agent.log_tail()
    assert answer["response"]["data"]["choices"] == [{"index": 0, "text": case.expected}]
    request = agent.wait_for_log_entry(
        "Completion request", lambda e: e["requestId"] == answer["requestId"]
    )
    assert request is not None, agent.log_tail()
    assert request["requestOptions"]["body"] == {
        "language": case.language,
        "segments": {"prefix": prefix, "suffix": suffix},
    }
    # The model saw Qwen's FIM layout of the file around the cursor.
    sent = [
        r.body
        for r in fake.records
        if r.path == "/v1/completions" and case.marker in str(r.body.get("prompt"))
    ]
    assert sent, f"the upstream never saw {case.filename}"
    assert sent[-1]["prompt"] == f"<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"
    assert sent[-1]["model"] == MODEL


def test_a_wrong_token_shows_as_unauthorized(server: KodifyServer, tmp_path: Path) -> None:
    agent = TabbyAgent(server.url, "not-the-token", tmp_path)
    try:
        agent.start()
        assert agent.lsp.wait_for(lambda: bool(agent.warnings()), timeout=WAIT_S)
        assert agent.warnings() == ["Tabby agent status: unauthorized"]
    finally:
        agent.stop()


def test_the_agent_can_reach_loopback_only(agent_installed: None, tmp_path: Path) -> None:
    """The guard the agent runs under: a remote address fails before any packet is sent."""
    script = (
        "(async () => {"
        " for (const url of ['http://192.0.2.1:81/', 'https://example.com/']) {"
        "  try { await fetch(url, {signal: AbortSignal.timeout(5000)}); console.log('reached'); }"
        "  catch (e) { console.log((e.cause || e).message); } } })();"
    )
    guard = loopback_only_script(tmp_path)
    done = subprocess.run(
        ["node", "--require", str(guard), "-e", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.splitlines() == [
        "connection to 192.0.2.1 refused: loopback only under test",
        "connection to example.com refused: loopback only under test",
    ]
