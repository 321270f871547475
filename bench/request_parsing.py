"""``python -m bench.request_parsing``: what checking a request body costs, per way of doing it.

No server: the gateway's parse of three realistic bodies, timed in this process.

- ``chat``: a chat completion with a system prompt and 5 turns (6 messages, ~2 KB), the
  usual sampling fields and two of vLLM's extras.
- ``completion``: an OpenAI completion of code with a suffix and stop words (~2 KB).
- ``tabby``: ``bench.fim``'s Python Tabby body (a 20 KB prefix, 10 snippets; ~28 KB).

Each row is one way, each time the median over ``--rounds`` of a round's mean, in µs of
CPU per body, decoding included (``orjson`` alone is the first row, the floor of every other):

- ``before``: the gateway's ``parse_request`` / ``parse_completion`` with the checks
  written field by field in Python, as they were before the requests were typed once;
  read from git (``--baseline``), the row is left out without it.
- ``now``: the gateway's ``parse_request`` / ``parse_completion`` as they are: a msgspec
  check against the Structs of gateway/api_schema/requests.py, and what the gateway
  builds from it (for Tabby: the prompt's segments and snippets, a completion id).

The candidates for the one typed definition, each only checking the decoded body:

- ``msgspec``: ``msgspec.convert`` into the Structs (what ``now`` does first).
- ``pydantic``: pydantic v2 models built from the same Structs, strict, same bounds
  (``model_validate``).
- ``jsonschema``: the generated OpenAPI components as the definition, checked by
  ``jsonschema``'s Draft 2020-12 validator (``is_valid``, its fastest answer).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import msgspec
import orjson
from msgspec import inspect as mi

from bench.fim_workload import build_workload
from gateway import openai_api, tabby
from gateway.api_schema import requests as typed
from gateway.api_schema.components import request_schemas

MAX_N = 4
ROOT = Path(__file__).resolve().parent.parent
# The commit that typed the requests brought this import into openai_api.py.
TYPED_MARK = "gateway.api_schema"

_CODE = '''def load_orders(client, ids, *, limit=100):
    """Fetch the orders with these ids, at most `limit` a call."""
    found = []
    for start in range(0, len(ids), limit):
        batch = ids[start : start + limit]
        found.extend(client.get("/orders", params={"id": batch}).json()["items"])
    return found
'''


@dataclass(frozen=True)
class Body:
    name: str
    endpoint: openai_api.Endpoint | None  # None: Tabby's
    raw: bytes


def bodies() -> list[Body]:
    turns = [
        {"role": "system", "content": "You are a careful senior Python reviewer. " * 8},
        {"role": "user", "content": f"Why is this slow?\n```python\n{_CODE}```"},
        {"role": "assistant", "content": "Each batch waits for the previous one. " * 12},
        {"role": "user", "content": f"Rewrite it with asyncio.\n```python\n{_CODE}```"},
        {"role": "assistant", "content": f"```python\n{_CODE.replace('def ', 'async def ')}```"},
        {"role": "user", "content": "Add retries with backoff, and type hints please."},
    ]
    chat = {
        "model": "Qwen/Qwen2.5-Coder-7B-Instruct",
        "messages": turns,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
        "top_p": 0.95,
        "max_tokens": 1024,
        "stop": ["<|im_end|>"],
        "top_k": 20,  # vLLM's extras: passed through unchecked
        "repetition_penalty": 1.05,
    }
    completion = {
        "model": "Qwen/Qwen2.5-Coder-7B",
        "prompt": _CODE * 5 + "def save_orders(client, orders):\n    ",
        "suffix": "\n\n" + _CODE,
        "max_tokens": 64,
        "temperature": 0.1,
        "n": 1,
        "stop": ["\n\n", "<|endoftext|>"],
        "seed": 7,
    }
    return [
        Body("chat", openai_api.Endpoint.CHAT, orjson.dumps(chat)),
        Body("completion", openai_api.Endpoint.COMPLETIONS, orjson.dumps(completion)),
        Body("tabby", None, build_workload("python").request),
    ]


# -- the ways ----------------------------------------------------------------------------

Parse = Callable[[bytes], Any]


def gateway_way(body: Body) -> Parse:
    if body.endpoint is None:
        return lambda raw: tabby.parse_completion(openai_api.decode_json(raw))
    endpoint = body.endpoint
    return lambda raw: openai_api.parse_request(endpoint, raw, max_n=MAX_N)


def baseline_revision() -> str:
    """The parent of the commit that typed the requests, or HEAD before that commit."""
    found = _git("log", "--reverse", "--format=%H", "-S", TYPED_MARK, "--", "gateway/openai_api.py")
    first = found.split()[0] if found and found.split() else None
    return f"{first}^" if first else "HEAD"


def hand_written_way(revision: str) -> Callable[[Body], Parse] | None:
    """The revision's own ``parse_request`` and ``parse_completion``, if hand-written."""
    sources = {
        name: _git("show", f"{revision}:gateway/{name}.py") for name in ("openai_api", "tabby")
    }
    if any(source is None or TYPED_MARK in source for source in sources.values()):
        return None
    modules = {name: _module(name, source or "") for name, source in sources.items()}
    old_api, old_tabby = modules["openai_api"], modules["tabby"]

    def way(body: Body) -> Parse:
        if body.endpoint is None:
            return lambda raw: old_tabby.parse_completion(old_api.decode_json(raw))
        endpoint = old_api.Endpoint(body.endpoint.value)
        return lambda raw: old_api.parse_request(endpoint, raw, max_n=MAX_N)

    return way


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def _module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(f"bench_baseline_{name}")
    module.__file__ = f"<baseline gateway/{name}.py>"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


_STRUCTS = {
    openai_api.Endpoint.CHAT: typed.ChatCompletionRequest,
    openai_api.Endpoint.COMPLETIONS: typed.CompletionRequest,
    None: typed.TabbyCompletionRequest,
}


def msgspec_way(body: Body) -> Parse:
    struct = _STRUCTS[body.endpoint]
    return lambda raw: msgspec.convert(orjson.loads(raw), struct)


def pydantic_way(body: Body) -> Parse:
    info = mi.type_info(_STRUCTS[body.endpoint])
    assert isinstance(info, mi.StructType)
    model = _pydantic_model(info)
    return lambda raw: model.model_validate(orjson.loads(raw))


def jsonschema_way(body: Body) -> Parse:
    from jsonschema import Draft202012Validator

    name = _STRUCTS[body.endpoint].__name__
    schema = {"$ref": f"#/components/schemas/{name}"}
    validator = Draft202012Validator({**schema, "components": {"schemas": request_schemas(MAX_N)}})
    return lambda raw: validator.is_valid(orjson.loads(raw))


_MODELS: dict[type, Any] = {}


def _pydantic_model(struct: mi.StructType) -> Any:
    """A strict pydantic model with the Struct's fields, types and bounds."""
    from pydantic import ConfigDict, create_model

    if struct.cls not in _MODELS:
        fields: dict[str, Any] = {}
        for field in struct.fields:
            default = ... if field.required else field.default
            fields[field.name] = (_pydantic_type(field.type), default)
        _MODELS[struct.cls] = create_model(
            struct.cls.__name__, __config__=ConfigDict(strict=True), **fields
        )
    return _MODELS[struct.cls]


def _pydantic_type(kind: mi.Type) -> Any:
    from pydantic import Field

    if isinstance(kind, mi.Metadata):
        return _pydantic_type(kind.type)
    if isinstance(kind, mi.UnionType):
        return Union[tuple(_pydantic_type(member) for member in kind.types)]  # noqa: UP007
    if isinstance(kind, mi.IntType | mi.FloatType):
        base = int if isinstance(kind, mi.IntType) else float
        return Annotated[base, Field(ge=kind.ge, le=kind.le, multiple_of=kind.multiple_of)]
    if isinstance(kind, mi.StrType):
        return Annotated[
            str, Field(min_length=kind.min_length, max_length=kind.max_length, pattern=kind.pattern)
        ]
    if isinstance(kind, mi.ListType):
        items = list.__class_getitem__(_pydantic_type(kind.item_type))
        return Annotated[items, Field(min_length=kind.min_length, max_length=kind.max_length)]
    if isinstance(kind, mi.StructType):
        return _pydantic_model(kind)
    if isinstance(kind, mi.LiteralType):
        return Literal[kind.values]
    simple = {mi.BoolType: bool, mi.NoneType: type(None), mi.AnyType: Any}
    return simple[type(kind)]


# -- timing ------------------------------------------------------------------------------


def medians_us(
    parses: dict[str, Parse], raw: bytes, *, rounds: int, round_us: float
) -> dict[str, float]:
    """Each way's median over ``rounds`` of its mean µs per parse in a round (GC off).

    The ways take turns, round by round, so that a busy spell of the machine falls on
    all of them alike.  A round of a way is as many parses as take about ``round_us``.
    Times are this thread's CPU time: on a busy machine, wall-clock time is partly other
    processes' turns on the core."""
    batch = {}
    for name, parse in parses.items():
        parse(raw)  # fails here, untimed, if the way refuses the body
        started = time.thread_time_ns()
        for _ in range(10):
            parse(raw)
        estimate_us = max((time.thread_time_ns() - started) / 10 / 1e3, 0.1)
        batch[name] = max(3, min(5000, round(round_us / estimate_us)))
    means: dict[str, list[float]] = {name: [] for name in parses}
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, parse in parses.items():
                count = batch[name]
                started = time.thread_time_ns()
                for _ in range(count):
                    parse(raw)
                means[name].append((time.thread_time_ns() - started) / count / 1e3)
    finally:
        if was_enabled:
            gc.enable()
    return {name: statistics.median(values) for name, values in means.items()}


def measure(
    *, rounds: int, round_us: float, baseline: str | None, ways: Sequence[str] | None = None
) -> dict[str, dict[str, float]]:
    """``{way: {body: median µs}}``, the ways in the table's order."""
    found: dict[str, Callable[[Body], Parse]] = {
        "orjson": lambda body: orjson.loads,
    }
    old = hand_written_way(baseline) if baseline else None
    if old is not None:
        found["before"] = old
    found["now"] = gateway_way
    found["msgspec"] = msgspec_way
    if importlib.util.find_spec("pydantic") is not None:  # a dev dependency only
        found["pydantic"] = pydantic_way
    found["jsonschema"] = jsonschema_way
    wanted = [name for name in found if ways is None or name in ways]
    results: dict[str, dict[str, float]] = {name: {} for name in wanted}
    for body in bodies():
        parses = {name: found[name](body) for name in wanted}
        for name, median in medians_us(parses, body.raw, rounds=rounds, round_us=round_us).items():
            results[name][body.name] = median
    return results


def table(results: dict[str, dict[str, float]]) -> str:
    names = [body.name for body in bodies()]
    sizes = {body.name: len(body.raw) for body in bodies()}
    header = f"{'µs per body':<14}" + "".join(
        f"{f'{n} ({sizes[n] / 1024:.0f} KB)':>18}" for n in names
    )
    lines = [header, "-" * len(header)]
    for way, row in results.items():
        lines.append(f"{way:<14}" + "".join(f"{row[name]:>18.1f}" for name in names))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--round-us", type=float, default=1000, help="µs of parsing a round")
    parser.add_argument(
        "--baseline",
        help="git revision of the hand-written checks (default: the one before the "
        "requests were typed); 'none' skips them",
    )
    args = parser.parse_args(argv)
    baseline = None if args.baseline == "none" else args.baseline or baseline_revision()
    results = measure(rounds=args.rounds, round_us=args.round_us, baseline=baseline)
    print(table(results))
    if baseline and "before" not in results:
        print(f"(no 'before' row: {baseline} already has typed requests, or no git)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
