"""Request bodies are checked against their Structs (gateway/api_schema/requests.py).

The tables pin each refused field's whole 400 body: ``param``, ``code`` and the message
the gateway has always written, and the bounds added with the Structs (``stop``, the
integers' and the sampling numbers' ranges).  The document's request schemas, generated
from the same Structs, must refuse exactly those bodies too.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from gateway.api_schema.components import request_schemas
from gateway.api_schema.requests import INT32_MAX, INT64_MAX, INT64_MIN
from gateway.api_schema.validation import explain
from gateway.errors import OpenAIError
from gateway.openai_api import Endpoint, check_request, parse_request
from gateway.tabby import MAX_SNIPPETS_READ, parse_completion, parse_event

pytestmark = pytest.mark.smoke

MAX_N = 3
M = [{"role": "user", "content": "hi"}]
PROMPT_KINDS = "'prompt' must be a string, a non-empty array of strings, or token ids."
TOKEN_IDS = "'prompt' arrays of token ids must hold integers."
ROLE = "'messages[0].role' must be a non-empty string."
SEGMENTS = "'segments' must be an object with 'prefix' (and optionally 'suffix')."
SNIPPET_FIELDS = "'segments.declarations[0]': 'filepath' and 'body' must be strings."
COMPLETION_ID = (
    "'completion_id' must be the id of a completion "
    "(at most 64 printable ASCII characters, no spaces)."
)
CHOICE_INDEX = f"'choice_index' must be an integer from 0 to {INT32_MAX}."
ELAPSED = f"'elapsed' must be a number of milliseconds from 0 to {2**32 - 1}."
VIEW_ID = "'view_id' must have at most 128 characters, none of them a control character."
STOP = "'stop' must be a string or an array of at most 4 strings."


def chat(**fields: Any) -> dict[str, Any]:
    return {"messages": M, **fields}


def completion(**fields: Any) -> dict[str, Any]:
    return {"prompt": "x", **fields}


def tabby(**fields: Any) -> dict[str, Any]:
    return {"segments": {"prefix": "a"}, **fields}


def snippets(*items: Any) -> dict[str, Any]:
    return {"segments": {"prefix": "a", "declarations": list(items)}}


def refusal(where: str, body: dict[str, Any]) -> tuple[str | None, str | None, str] | None:
    """(param, code, message) of the gateway's 400 for ``body``; None if it takes it."""
    try:
        if where == "chat":
            parse_request(Endpoint.CHAT, _encoded(body), max_n=MAX_N)
        elif where == "completions":
            parse_request(Endpoint.COMPLETIONS, _encoded(body), max_n=MAX_N)
        elif where == "tabby":
            parse_completion(body)
        else:
            parse_event(body, {})
    except OpenAIError as error:
        assert error.status == 400 and error.type == "invalid_request_error"
        return error.param, error.code, error.message
    return None


def _encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()  # orjson refuses integers past 64 bits


# (where, body, param, code, message): the 400s as the hand-written checks wrote them.
Row = tuple[str, dict[str, Any], str, str, str]
KEPT: list[Row] = [
    (
        "chat",
        {},
        "messages",
        "missing_required_parameter",
        '\'messages\' is required: a list of {"role", "content"} objects.',
    ),
    (
        "chat",
        {"messages": None},
        "messages",
        "missing_required_parameter",
        '\'messages\' is required: a list of {"role", "content"} objects.',
    ),
    (
        "chat",
        {"messages": []},
        "messages",
        "invalid_value",
        "'messages' must be a non-empty array.",
    ),
    (
        "chat",
        {"messages": "hi"},
        "messages",
        "invalid_value",
        "'messages' must be a non-empty array.",
    ),
    ("chat", {"messages": [5]}, "messages[0]", "invalid_type", "'messages[0]' must be an object."),
    (
        "chat",
        {"messages": [None]},
        "messages[0]",
        "invalid_type",
        "'messages[0]' must be an object.",
    ),
    ("chat", {"messages": [{"content": "hi"}]}, "messages[0]", "invalid_value", ROLE),
    ("chat", {"messages": [{"role": ""}]}, "messages[0]", "invalid_value", ROLE),
    ("chat", {"messages": [{"role": 5}]}, "messages[0]", "invalid_value", ROLE),
    ("chat", {"messages": [{"role": None}]}, "messages[0]", "invalid_value", ROLE),
    (
        "chat",
        {"messages": [{"role": "user", "content": 5}]},
        "messages[0]",
        "invalid_type",
        "'messages[0].content' must be a string or an array of content parts.",
    ),
    ("chat", chat(model=""), "model", "invalid_value", "'model' must not be empty."),
    ("chat", chat(model="  "), "model", "invalid_value", "'model' must not be empty."),
    ("chat", chat(model=5), "model", "invalid_type", "'model' must be a string."),
    ("chat", chat(stream="yes"), "stream", "invalid_type", "'stream' must be a boolean."),
    ("chat", chat(stream=1), "stream", "invalid_type", "'stream' must be a boolean."),
    (
        "chat",
        chat(stream_options=[]),
        "stream_options",
        "invalid_type",
        "'stream_options' must be an object.",
    ),
    ("chat", chat(n=0), "n", "invalid_value", "'n' must be at least 1."),
    (
        "chat",
        chat(n=4),
        "n",
        "n_too_large",
        "'n' is 4, above this server's limit of 3 (MAX_N).",
    ),
    ("chat", chat(n=4.0), "n", "n_too_large", "'n' is 4, above this server's limit of 3 (MAX_N)."),
    (
        "chat",
        chat(best_of=4),
        "best_of",
        "n_too_large",
        "'best_of' is 4, above this server's limit of 3 (MAX_N).",
    ),
    ("chat", chat(best_of=0), "best_of", "invalid_value", "'best_of' must be at least 1."),
    ("chat", chat(n=True), "n", "invalid_type", "'n' must be an integer."),
    ("chat", chat(n=2.5), "n", "invalid_type", "'n' must be an integer."),
    ("chat", chat(n="2"), "n", "invalid_type", "'n' must be an integer."),
    (
        "chat",
        chat(temperature=2.5),
        "temperature",
        "invalid_value",
        "'temperature' must be between 0 and 2.",
    ),
    (
        "chat",
        chat(temperature=-1),
        "temperature",
        "invalid_value",
        "'temperature' must be between 0 and 2.",
    ),
    (
        "chat",
        chat(temperature="hot"),
        "temperature",
        "invalid_type",
        "'temperature' must be a number.",
    ),
    (
        "chat",
        chat(temperature=True),
        "temperature",
        "invalid_type",
        "'temperature' must be a number.",
    ),
    ("chat", chat(top_p=-0.1), "top_p", "invalid_value", "'top_p' must be between 0 and 1."),
    (
        "chat",
        chat(max_tokens=-1),
        "max_tokens",
        "invalid_value",
        "'max_tokens' must be at least 0.",
    ),
    (
        "chat",
        chat(max_tokens="9"),
        "max_tokens",
        "invalid_type",
        "'max_tokens' must be an integer.",
    ),
    (
        "chat",
        chat(max_completion_tokens=-3),
        "max_completion_tokens",
        "invalid_value",
        "'max_completion_tokens' must be at least 0.",
    ),
    (
        "completions",
        {},
        "prompt",
        "missing_required_parameter",
        "'prompt' is required: a string, an array of strings or of token ids.",
    ),
    (
        "completions",
        {"prompt": None},
        "prompt",
        "missing_required_parameter",
        "'prompt' is required: a string, an array of strings or of token ids.",
    ),
    ("completions", {"prompt": []}, "prompt", "invalid_type", PROMPT_KINDS),
    ("completions", {"prompt": 5}, "prompt", "invalid_type", PROMPT_KINDS),
    ("completions", {"prompt": ["a", 1]}, "prompt", "invalid_type", PROMPT_KINDS),
    ("completions", {"prompt": [1, [2]]}, "prompt", "invalid_type", PROMPT_KINDS),
    ("completions", {"prompt": [[1], 2]}, "prompt", "invalid_type", PROMPT_KINDS),
    ("completions", {"prompt": [[1], "a"]}, "prompt", "invalid_type", PROMPT_KINDS),
    ("completions", {"prompt": [True]}, "prompt", "invalid_type", PROMPT_KINDS),
    ("completions", {"prompt": [None]}, "prompt", "invalid_type", PROMPT_KINDS),
    ("completions", {"prompt": [1.5]}, "prompt", "invalid_type", PROMPT_KINDS),
    ("completions", {"prompt": [[1], []]}, "prompt", "invalid_value", TOKEN_IDS),
    ("completions", {"prompt": [[1], ["a"]]}, "prompt", "invalid_value", TOKEN_IDS),
    ("completions", {"prompt": [[-1]]}, "prompt", "invalid_value", TOKEN_IDS),
    ("completions", {"prompt": [[2**31]]}, "prompt", "invalid_value", TOKEN_IDS),
    ("completions", {"prompt": [-1]}, "prompt", "invalid_type", PROMPT_KINDS),
    ("completions", {"prompt": [2**31]}, "prompt", "invalid_type", PROMPT_KINDS),
    ("completions", {"prompt": [[True]]}, "prompt", "invalid_value", TOKEN_IDS),
    ("completions", completion(suffix=5), "suffix", "invalid_type", "'suffix' must be a string."),
    (
        "completions",
        completion(n=4),
        "n",
        "n_too_large",
        "'n' is 4, above this server's limit of 3 (MAX_N).",
    ),
    ("tabby", {"segments": None}, "segments", "invalid_type", SEGMENTS),
    ("tabby", {"segments": []}, "segments", "invalid_type", SEGMENTS),
    ("tabby", {"segments": "def f():"}, "segments", "invalid_type", SEGMENTS),
    (
        "tabby",
        {"segments": {"suffix": "x"}},
        "segments.prefix",
        "missing_required_parameter",
        "'segments.prefix' is required: the text before the cursor.",
    ),
    (
        "tabby",
        {"segments": {"prefix": None}},
        "segments.prefix",
        "missing_required_parameter",
        "'segments.prefix' is required: the text before the cursor.",
    ),
    (
        "tabby",
        {"segments": {"prefix": 12}},
        "segments.prefix",
        "invalid_type",
        "'segments.prefix' must be a string.",
    ),
    (
        "tabby",
        {"segments": {"prefix": "a", "suffix": ["b"]}},
        "segments.suffix",
        "invalid_type",
        "'segments.suffix' must be a string.",
    ),
    (
        "tabby",
        {"segments": {"prefix": "a", "declarations": {"x": 1}}},
        "segments.declarations",
        "invalid_type",
        "'segments.declarations' must be an array.",
    ),
    (
        "tabby",
        snippets(5),
        "segments.declarations",
        "invalid_type",
        "'segments.declarations[0]' must be an object with 'filepath' and 'body'.",
    ),
    ("tabby", snippets({"body": 1}), "segments.declarations", "invalid_type", SNIPPET_FIELDS),
    (
        "tabby",
        snippets({"filepath": "a"}),
        "segments.declarations",
        "invalid_type",
        "'segments.declarations[0]': 'filepath' and 'body' must be strings.",
    ),
    (
        "tabby",
        snippets({"filepath": None, "body": "b"}),
        "segments.declarations",
        "invalid_type",
        "'segments.declarations[0]': 'filepath' and 'body' must be strings.",
    ),
    ("tabby", tabby(language=3), "language", "invalid_type", "'language' must be a string."),
    ("tabby", tabby(model=""), "model", "invalid_value", "'model' must be a non-empty string."),
    ("tabby", tabby(model=5), "model", "invalid_value", "'model' must be a non-empty string."),
    (
        "tabby",
        tabby(temperature="hot"),
        "temperature",
        "invalid_type",
        "'temperature' must be a number.",
    ),
    (
        "tabby",
        tabby(temperature=3),
        "temperature",
        "invalid_value",
        "'temperature' must be between 0 and 2.",
    ),
    ("tabby", tabby(seed=1.5), "seed", "invalid_type", "'seed' must be an integer."),
    ("tabby", tabby(seed=True), "seed", "invalid_type", "'seed' must be an integer."),
    (
        "tabby",
        tabby(debug_options=5),
        "debug_options",
        "invalid_type",
        "'debug_options' must be an object.",
    ),
    (
        "tabby",
        tabby(debug_options={"return_snippets": None}),
        "debug_options.return_snippets",
        "invalid_type",
        "'debug_options.return_snippets' must be true or false.",
    ),
    (
        "tabby",
        tabby(debug_options={"raw_prompt": 5}),
        "debug_options.raw_prompt",
        "invalid_type",
        "'debug_options.raw_prompt' must be a string.",
    ),
    ("event", {}, "type", "invalid_value", "'type' must be one of view, select, dismiss."),
    (
        "event",
        {"type": "launch", "completion_id": "c"},
        "type",
        "invalid_value",
        "'type' must be one of view, select, dismiss.",
    ),
    (
        "event",
        {"type": 5, "completion_id": "c"},
        "type",
        "invalid_value",
        "'type' must be one of view, select, dismiss.",
    ),
    ("event", {"type": "view"}, "completion_id", "invalid_value", COMPLETION_ID),
    (
        "event",
        {"type": "view", "completion_id": ""},
        "completion_id",
        "invalid_value",
        COMPLETION_ID,
    ),
    (
        "event",
        {"type": "view", "completion_id": "x" * 65},
        "completion_id",
        "invalid_value",
        COMPLETION_ID,
    ),
    (
        "event",
        {"type": "view", "completion_id": "c", "choice_index": True},
        "choice_index",
        "invalid_type",
        "'choice_index' must be a non-negative integer.",
    ),
    (
        "event",
        {"type": "view", "completion_id": "c", "view_id": 5},
        "view_id",
        "invalid_type",
        "'view_id' must be a string.",
    ),
    (
        "event",
        {"type": "view", "completion_id": "c", "elapsed": "1"},
        "elapsed",
        "invalid_type",
        "'elapsed' must be a non-negative number of milliseconds.",
    ),
]

_CI = ("choice_index", "invalid_value", CHOICE_INDEX)
_ID = ("completion_id", "invalid_value", COMPLETION_ID)
_TYPE = ("type", "invalid_value", "'type' must be one of view, select, dismiss.")
_VIEW = ("view_id", "invalid_value", VIEW_ID)
_ELAPSED = ("elapsed", "invalid_value", ELAPSED)

# The same, for the rules the Structs brought.
ADDED: list[Row] = [
    ("chat", chat(stop=True), "stop", "invalid_type", STOP),
    ("chat", chat(stop=1.5), "stop", "invalid_type", STOP),
    ("chat", chat(stop=[1]), "stop", "invalid_type", STOP),
    ("chat", chat(stop=[None]), "stop", "invalid_type", STOP),
    ("chat", chat(stop=["a"] * 5), "stop", "invalid_value", STOP),
    ("completions", completion(stop={}), "stop", "invalid_type", STOP),
    (
        "chat",
        chat(max_tokens=1e29),
        "max_tokens",
        "invalid_value",
        f"'max_tokens' must be at most {INT32_MAX}.",
    ),
    (
        "chat",
        chat(max_tokens=2**63),
        "max_tokens",
        "invalid_value",
        "'max_tokens' must be at most 2147483647.",
    ),
    (
        "chat",
        chat(max_tokens=2**31),
        "max_tokens",
        "invalid_value",
        "'max_tokens' must be at most 2147483647.",
    ),
    (
        "chat",
        chat(max_completion_tokens=1e29),
        "max_completion_tokens",
        "invalid_value",
        "'max_completion_tokens' must be at most 2147483647.",
    ),
    (
        "chat",
        chat(n=1e29),
        "n",
        "n_too_large",
        "'n' is 1e+29, above this server's limit of 3 (MAX_N).",
    ),
    (
        "chat",
        chat(n=2**63),
        "n",
        "n_too_large",
        "'n' is 9223372036854775808, above this server's limit of 3 (MAX_N).",
    ),
    (
        "chat",
        chat(best_of=1e29),
        "best_of",
        "n_too_large",
        "'best_of' is 1e+29, above this server's limit of 3 (MAX_N).",
    ),
    ("chat", chat(seed=1e29), "seed", "invalid_value", f"'seed' must be at most {INT64_MAX}."),
    (
        "chat",
        chat(seed=2**63),
        "seed",
        "invalid_value",
        "'seed' must be at most 9223372036854775807.",
    ),
    (
        "chat",
        chat(seed=INT64_MIN - 1),  # orjson: a float, -2.0**63
        "seed",
        "invalid_value",
        f"'seed' must be between {INT64_MIN} and {INT64_MAX}.",
    ),
    ("chat", chat(seed="1"), "seed", "invalid_type", "'seed' must be an integer."),
    ("chat", chat(seed=1.5), "seed", "invalid_type", "'seed' must be an integer."),
    ("chat", chat(logprobs=1), "logprobs", "invalid_type", "'logprobs' must be a boolean."),
    (
        "chat",
        chat(top_logprobs=1e29),
        "top_logprobs",
        "invalid_value",
        "'top_logprobs' must be at most 2147483647.",
    ),
    (
        "chat",
        chat(top_logprobs=-2),
        "top_logprobs",
        "invalid_value",
        "'top_logprobs' must be at least -1.",
    ),
    (
        "completions",
        completion(logprobs=1e29),
        "logprobs",
        "invalid_value",
        "'logprobs' must be at most 2147483647.",
    ),
    (
        "completions",
        completion(logprobs=2**63),
        "logprobs",
        "invalid_value",
        "'logprobs' must be at most 2147483647.",
    ),
    (
        "completions",
        completion(logprobs=True),
        "logprobs",
        "invalid_type",
        "'logprobs' must be an integer.",
    ),
    (
        "completions",
        completion(logprobs=-2),
        "logprobs",
        "invalid_value",
        "'logprobs' must be at least -1.",
    ),
    (
        "chat",
        chat(temperature=1e29),
        "temperature",
        "invalid_value",
        "'temperature' must be between 0 and 2.",
    ),
    ("chat", chat(top_p=2), "top_p", "invalid_value", "'top_p' must be between 0 and 1."),
    (
        "chat",
        chat(presence_penalty=2.5),
        "presence_penalty",
        "invalid_value",
        "'presence_penalty' must be between -2 and 2.",
    ),
    (
        "chat",
        chat(presence_penalty=-3),
        "presence_penalty",
        "invalid_value",
        "'presence_penalty' must be between -2 and 2.",
    ),
    (
        "completions",
        completion(presence_penalty="x"),
        "presence_penalty",
        "invalid_type",
        "'presence_penalty' must be a number.",
    ),
    (
        "chat",
        chat(frequency_penalty=2.1),
        "frequency_penalty",
        "invalid_value",
        "'frequency_penalty' must be between -2 and 2.",
    ),
    (
        "chat",
        chat(frequency_penalty=True),
        "frequency_penalty",
        "invalid_type",
        "'frequency_penalty' must be a number.",
    ),
    (
        "chat",
        chat(stream_options={"include_usage": "yes"}),
        "stream_options.include_usage",
        "invalid_type",
        "'stream_options.include_usage' must be a boolean.",
    ),
    ("tabby", tabby(seed=2**63), "seed", "invalid_value", f"'seed' must be at most {INT64_MAX}."),
    (
        "tabby",
        tabby(seed=1e29),
        "seed",
        "invalid_value",
        "'seed' must be at most 9223372036854775807.",
    ),
    (
        "tabby",
        tabby(temperature=1e29),
        "temperature",
        "invalid_value",
        "'temperature' must be between 0 and 2.",
    ),
    (
        "tabby",
        snippets({"body": "b", "score": "high"}),
        "segments.declarations[0].score",
        "invalid_type",
        "'segments.declarations[0].score' must be a number.",
    ),
    # Each field of an event within what its journal column (or jsonb) holds: the
    # database would refuse the event after its 200.
    ("event", {"type": "view", "completion_id": "c", "choice_index": -1}, *_CI),
    ("event", {"type": "view", "completion_id": "c", "choice_index": 2**63}, *_CI),
    ("event", {"type": "view", "completion_id": "c", "choice_index": 151333010468}, *_CI),
    ("event", {"type": "view", "completion_id": "c", "choice_index": INT32_MAX + 1}, *_CI),
    ("event", {"type": "view", "completion_id": "c", "choice_index": 1.5}, *_CI),
    ("event", {"type": "view", "completion_id": "c\x00"}, *_ID),
    ("event", {"type": "view", "completion_id": "cmpl 1"}, *_ID),
    ("event", {"type": "view", "completion_id": "cmpl-1\n"}, *_ID),
    ("event", {"type": "view", "completion_id": "cmpl-é"}, *_ID),
    ("event", {"type": "view\x00", "completion_id": "c"}, *_TYPE),
    ("event", {"type": "view", "completion_id": "c", "view_id": "v\x00"}, *_VIEW),
    ("event", {"type": "view", "completion_id": "c", "view_id": "v\n"}, *_VIEW),
    ("event", {"type": "view", "completion_id": "c", "view_id": "v" * 129}, *_VIEW),
    ("event", {"type": "view", "completion_id": "c", "elapsed": -1}, *_ELAPSED),
    ("event", {"type": "view", "completion_id": "c", "elapsed": 2**32}, *_ELAPSED),
    ("event", {"type": "view", "completion_id": "c", "elapsed": 1e300}, *_ELAPSED),
]


@pytest.mark.parametrize(("where", "body", "param", "code", "message"), KEPT + ADDED)
def test_a_bad_field_gets_its_400(
    where: str, body: dict[str, Any], param: str, code: str, message: str
) -> None:
    assert refusal(where, body) == (param, code, message)


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("chat", chat(stop="x")),
    ("chat", chat(stop=[])),
    ("chat", chat(stop=["a", "b", "c", "d"])),
    ("chat", chat(n=2.0, max_tokens=2.0, best_of=3)),  # 2.0 is an integer, as in JSON Schema
    ("chat", chat(max_tokens=INT32_MAX, seed=INT64_MAX)),
    ("chat", chat(seed=INT64_MIN, logprobs=True, top_logprobs=-1)),
    ("chat", chat(presence_penalty=-2, frequency_penalty=2, temperature=0, top_p=1)),
    ("chat", chat(model=None, stream=None, n=None, temperature=None, stop=None)),
    ("completions", completion(logprobs=-1)),
    ("completions", completion(logprobs=5, echo=True, top_k=20, min_p=0.1)),
    ("completions", {"prompt": [[1, 2], [3]]}),
    # JSON Schema cannot tell 1.0 from 1: the gateway takes both as a token id.
    ("completions", {"prompt": [[1.0]]}),
    ("completions", {"prompt": [1.0, 2, INT32_MAX]}),
    ("tabby", tabby(seed=2.0, temperature=1)),
    ("event", {"type": "select", "completion_id": "c", "choice_index": 2.0, "elapsed": 1}),
    (
        "event",
        {
            "type": "dismiss",
            "completion_id": "cmpl-" + "f" * 59,
            "choice_index": INT32_MAX,
            "view_id": "view-é" + "v" * 122,
            "elapsed": 2**32 - 1,
        },
    ),
]


@pytest.mark.parametrize(("where", "body"), ACCEPTED)
def test_good_bodies_pass(where: str, body: dict[str, Any]) -> None:
    assert refusal(where, body) is None


def test_unknown_fields_reach_the_upstream_untouched() -> None:
    raw = orjson.dumps(
        chat(
            top_k=20,
            repetition_penalty=1.05,
            guided_json={"type": "object"},
            stream_options={"include_usage": False, "continuous_usage_stats": True},
            messages=[{"role": "user", "content": "hi", "name": "me", "x": [1]}],
        )
    )
    request = parse_request(Endpoint.CHAT, raw, max_n=MAX_N)
    assert request.upstream_body() is raw  # the client's very bytes
    assert request.body == orjson.loads(raw)
    assert request.model is None and request.stream is False


def test_the_checked_request_keeps_model_and_stream() -> None:
    body = completion(model="m", stream=True, n=2.0)
    request = check_request(Endpoint.COMPLETIONS, body, None, max_n=MAX_N)
    assert (request.model, request.stream, request.body) == ("m", True, body)
    assert request.body["n"] == 2.0  # forwarded as the client wrote it


def test_max_n_is_the_console_s() -> None:
    assert refusal("chat", chat(n=3)) is None
    assert parse_request(Endpoint.CHAT, orjson.dumps(chat(n=9)), max_n=9).body["n"] == 9
    with pytest.raises(OpenAIError, match=r"limit of 8 \(MAX_N\)"):
        parse_request(Endpoint.CHAT, orjson.dumps(chat(n=9)), max_n=8)


def test_a_tabby_body_becomes_the_completion_request() -> None:
    snippet = {"filepath": "a.py", "body": "A = 1", "score": 0.5}
    request = parse_completion(
        {
            "language": "python",
            "segments": {
                "prefix": "def f(",
                "suffix": None,
                "declarations": [snippet] * (MAX_SNIPPETS_READ + 5),
                "relevant_snippets_from_changed_files": [{"body": "B = 2"}],
                "clipboard": "  clip ",
            },
            "seed": 7.0,
            "temperature": 1,
            "debug_options": {"return_prompt": True, "raw_prompt": "raw"},
            "unknown": {"ignored": True},
        }
    )
    segments = request.segments
    assert (segments.prefix, segments.suffix, segments.filepath) == ("def f(", "", "")
    kinds = [item.kind for item in segments.snippets]
    assert kinds == ["declaration"] * MAX_SNIPPETS_READ + ["changed_file", "clipboard"]
    assert segments.snippets[-2].filepath == "" and segments.snippets[-1].body == "  clip "
    assert (request.language, request.user, request.mode, request.model) == ("python", "", "", None)
    assert request.seed == 7 and isinstance(request.seed, int)
    assert request.temperature == 1.0 and isinstance(request.temperature, float)
    debug = request.debug
    assert (debug.return_prompt, debug.return_snippets, debug.raw_prompt) == (True, False, "raw")
    assert request.completion_id.startswith("cmpl-")
    assert parse_completion(tabby()).debug.wanted is False


def test_an_event_keeps_what_the_journal_stores() -> None:
    event = parse_event(
        {
            "type": "view",
            "completion_id": "c",
            "choice_index": 1.0,
            "view_id": "v" * 128,
            "elapsed": 1500,
        },
        {"select_kind": "line", "other": "ignored"},
    )
    assert (event.kind, event.completion_id, event.choice_index) == ("view", "c", 1)
    assert event.payload == {"view_id": "v" * 128, "elapsed": 1500, "select_kind": "line"}
    assert isinstance(event.payload["elapsed"], int)
    assert parse_event({"type": "view", "completion_id": "c"}, {"select_kind": ""}).payload == {}


@pytest.mark.parametrize("select_kind", ["word", "line\x00", "\x00", "l" * 17])
def test_an_event_s_select_kind_is_tabby_s_line_or_nothing(select_kind: str) -> None:
    with pytest.raises(OpenAIError) as refused:
        parse_event({"type": "select", "completion_id": "c"}, {"select_kind": select_kind})
    error = refused.value
    assert (error.status, error.param, error.code) == (400, "select_kind", "invalid_value")
    assert error.message == "'select_kind' must be one of line."


def test_an_unreadable_msgspec_message_still_gives_a_400() -> None:
    from gateway.api_schema.requests import TabbyEvent

    error = explain(TabbyEvent, {}, "Something new - at `$.nowhere[0]`")
    assert error.status == 400 and error.code == "invalid_value"
    assert "Something new" in error.message


# -- the document refuses what the gateway refuses ---------------------------------------

_NAMES = {
    "chat": "ChatCompletionRequest",
    "completions": "CompletionRequest",
    "tabby": "TabbyCompletionRequest",
    "event": "TabbyEvent",
}


AGREED = [(row[0], row[1]) for row in KEPT + ADDED]


@pytest.mark.parametrize(("where", "body"), AGREED + ACCEPTED)
def test_the_document_agrees(where: str, body: dict[str, Any]) -> None:
    validator = Draft202012Validator(
        {
            "$ref": f"#/components/schemas/{_NAMES[where]}",
            "components": {"schemas": request_schemas(MAX_N)},
        }
    )
    documented = validator.is_valid(body)
    assert documented == (refusal(where, body) is None)
