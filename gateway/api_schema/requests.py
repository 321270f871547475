"""The request bodies of the public API, each typed once.

Each body is a msgspec Struct.  The gateway checks a decoded body against it
(``validation.convert``, from ``openai_api.check_request`` and ``tabby.parse_completion``
/ ``parse_event``), and ``components`` turns the same Structs into the OpenAPI document's
request schemas, so the two cannot drift apart.  A Struct names only the fields the
gateway understands or guards; msgspec skips the others, and the gateway forwards the
client's body (never the Struct), so vLLM's many extra options pass through untouched.

Why msgspec: ``python -m bench.request_parsing`` timed the candidates on a chat body of 6
messages, an OpenAI completion body and a 28 KB Tabby body (µs of CPU per body, median,
orjson's decoding included, on the development machine):

    ==========================  =====  ==========  =====
    µs per body                  chat  completion  tabby
    ==========================  =====  ==========  =====
    orjson decoding alone         2.8         2.0   15.8
    the hand-written checks       8.7         5.3   34.0
    msgspec (the gateway now)     6.4         5.2   32.5
    msgspec, the check alone      4.8         3.5   17.6
    pydantic v2, strict          11.2         5.6   27.0
    jsonschema, the document      404         143    553
    ==========================  =====  ==========  =====

msgspec checks a decoded body in 1 to 2 µs, in C: the gateway is no slower than with its
hand-written checks (faster on chat bodies) against a budget of about 300 µs of CPU a
request.  pydantic v2, with models of the same fields and bounds, costs 2 to 6 times as
much as msgspec for the check, and a JSON Schema validator over the document (one
definition in the other direction) 100 to 300 times; msgspec also writes the JSON Schema.

What a type cannot say is checked right after it, in ``check_max_n`` and ``check_prompt``:
MAX_N, the console's limit, is known per request; a prompt's items must be of one kind.
Field texts (``description``) are the API's documentation; ``Says`` words the 400s.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from gateway.api_schema.validation import Says, says
from gateway.errors import OpenAIError

INT32_MAX = 2**31 - 1  # far above any model's context, far below what overflows upstream
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT_BELOW_2_63 = 2**63 - 1024  # the float nearest to 2**63 from below

# Integers.  2.0 counts as one, as it does for JSON Schema and for vLLM's own checks;
# the float branch has the same bounds, so 1e29 is refused as 10**29 is.
# n and best_of have no upper bound of their own: above MAX_N is ``n_too_large``.
Count = Annotated[int, Meta(ge=1)] | Annotated[float, Meta(ge=1, multiple_of=1)]
TokenCount = (
    Annotated[int, Meta(ge=0, le=INT32_MAX)]
    | Annotated[float, Meta(ge=0, le=INT32_MAX, multiple_of=1)]
)
# -1 asks vLLM for the whole vocabulary's log-probabilities.
LogprobCount = (
    Annotated[int, Meta(ge=-1, le=INT32_MAX)]
    | Annotated[float, Meta(ge=-1, le=INT32_MAX, multiple_of=1)]
)
# A seed is any int64.  orjson decodes integers past 64 bits as floats, which may round
# to ±2**63 exactly: the float branch stops one float short of that.
Seed = (
    Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX)]
    | Annotated[float, Meta(ge=-FLOAT_BELOW_2_63, le=FLOAT_BELOW_2_63, multiple_of=1)]
)
Temperature = Annotated[float, Meta(ge=0, le=2)]
TopP = Annotated[float, Meta(ge=0, le=1)]
Penalty = Annotated[float, Meta(ge=-2, le=2)]

Stop = Annotated[
    str | Annotated[list[str], Meta(max_length=4)] | None,
    Meta(
        description="Up to 4 sequences where the generation stops.",
        extra=says(message="'stop' must be a string or an array of at most 4 strings.", inner=True),
    ),
]


def _described(description: str) -> Meta:
    return Meta(description=description)


# -- OpenAI ----------------------------------------------------------------------------


class StreamOptions(msgspec.Struct, gc=False):
    include_usage: bool | None = None


class ChatMessage(msgspec.Struct, gc=False):
    role: Annotated[
        str,
        Meta(
            min_length=1,
            examples=["system", "user", "assistant", "tool"],
            extra=says(
                message="'{path}' must be a non-empty string.",
                code="invalid_value",
                param="{parent}",
            ),
        ),
    ]
    content: Annotated[
        str | list[Any] | None,
        Meta(
            description="Text, or an array of OpenAI content parts.",
            extra=says(
                message="'{path}' must be a string or an array of content parts.",
                code="invalid_type",
                param="{parent}",
            ),
        ),
    ] = None


ModelName = Annotated[
    Annotated[str, Meta(pattern=r"\S")] | None,
    Meta(
        description="A model listed by `GET /v1/models`. Omitted or null: the default "
        "model (the first model of the first enabled upstream).",
        extra=says(value="'{path}' must not be empty."),
    ),
]


class _Generation(msgspec.Struct, kw_only=True, gc=False):
    """The fields both OpenAI generation endpoints check."""

    model: ModelName = None
    stream: bool | None = False
    stream_options: Annotated[
        StreamOptions | None,
        _described("With `include_usage`, the stream ends with a chunk carrying `usage`."),
    ] = None
    n: Annotated[
        Count | None, _described("Answers to generate; at most {max_n} on this server (MAX_N).")
    ] = None
    best_of: Annotated[
        Count | None, _described("Candidates to generate (vLLM); at most {max_n} (MAX_N).")
    ] = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    seed: Seed | None = None
    stop: Stop = None
    priority: Annotated[
        Seed | None,
        _described(
            "vLLM's scheduling priority (lower: sooner). Sent only to upstreams that run "
            "vLLM with priority scheduling, and there it orders the request among its "
            "class (0 to 999 kept, a negative value counts as 0): autocompletion (a "
            "completion with `suffix`) is scheduled before chat."
        ),
    ] = None


class ChatCompletionRequest(_Generation, kw_only=True, gc=False):
    """An OpenAI chat completion request. Fields not listed here (sampling options,
    `tools`, vLLM's extra parameters…) are passed to the upstream unchanged."""

    messages: Annotated[
        list[ChatMessage],
        Meta(
            min_length=1,
            extra=says(
                required='\'messages\' is required: a list of {{"role", "content"}} objects.',
                message="'messages' must be a non-empty array.",
                code="invalid_value",
            ),
        ),
    ]
    logprobs: bool | None = None
    top_logprobs: LogprobCount | None = None


# A prompt is a string, or a non-empty array of strings, of token ids, or of arrays of
# token ids.  msgspec's unions hold one array type, so the type takes an array of any of
# those items and ``check_prompt`` wants them all of one kind; the ``anyOf`` below says
# the same to the document's readers.
_PROMPT = Says(
    required="'prompt' is required: a string, an array of strings or of token ids.",
    message="'prompt' must be a string, a non-empty array of strings, or token ids.",
    code="invalid_type",
    inner=True,
)
# A token id: an index into the model's vocabulary.  Bounded so that the document and
# the gateway agree on every number (2.0 counts as 2, as for JSON Schema; a number past
# 2**63 is not even JSON the gateway can read).
TokenId = (
    Annotated[int, Meta(ge=0, le=INT32_MAX)]
    | Annotated[float, Meta(ge=0, le=INT32_MAX, multiple_of=1)]
)
TokenIds = Annotated[
    list[TokenId],
    Meta(
        min_length=1,
        extra=says(
            message="'prompt' arrays of token ids must hold integers.",
            code="invalid_value",
            param="prompt",
            inner=True,
        ),
    ),
]
_ONE_KIND = {"anyOf": [{"items": {"type": kind}} for kind in ("string", "integer", "array")]}
Prompt = Annotated[
    str
    | Annotated[list[str | TokenId | TokenIds], Meta(min_length=1, extra_json_schema=_ONE_KIND)],
    Meta(
        description="A string, strings, or token ids (one list or several).",
        extra={"says": _PROMPT},
    ),
]


class CompletionRequest(_Generation, kw_only=True, gc=False):
    """An OpenAI (legacy) completion request. Fields not listed here (sampling options,
    `tools`, vLLM's extra parameters…) are passed to the upstream unchanged. With
    `suffix`, when the model's preprocessing config says its server cannot take `suffix`
    (vLLM), Kodify lays prompt and suffix out in the model's fill-in-the-middle template
    and adds its FIM tokens to `stop`."""

    prompt: Prompt
    suffix: Annotated[str | None, _described("Text after the completion (FIM).")] = None
    logprobs: LogprobCount | None = None


# Both OpenAI requests take at most MAX_N of these, a limit the console may change.
MAX_N_FIELDS = ("n", "best_of")


def check_max_n(request: _Generation, max_n: int) -> None:
    for key in MAX_N_FIELDS:
        value = getattr(request, key)
        if value is not None and value > max_n:
            shown = value if isinstance(value, int) else f"{value:g}"  # 4.0 is 4, 1e29 1e+29
            raise OpenAIError(
                400,
                f"'{key}' is {shown}, above this server's limit of {max_n} (MAX_N).",
                param=key,
                code="n_too_large",
            )


_ALL_OF_ONE_KIND = {str: list[str], int: list[TokenId], float: list[TokenId], list: list[list[Any]]}


def check_prompt(request: CompletionRequest) -> None:
    """The prompt's items (already of the allowed kinds) are all of the first one's kind."""
    prompt = request.prompt
    if isinstance(prompt, list) and len(prompt) > 1:
        try:  # in C: a prompt of token ids can be thousands long
            msgspec.convert(prompt, _ALL_OF_ONE_KIND[type(prompt[0])])
        except msgspec.ValidationError:
            raise _PROMPT.error("prompt") from None


# -- vLLM's tokenizer -------------------------------------------------------------------


class TokenizeRequest(msgspec.Struct, kw_only=True, gc=False):
    """vLLM's tokenizer: the token ids of `prompt`, or of chat `messages` as the model's
    chat template lays them out. Fields not listed here (`add_special_tokens`,
    `add_generation_prompt`, `return_token_strs`…) are passed to the upstream unchanged."""

    model: ModelName = None
    prompt: Annotated[str | None, _described("The text to tokenize.")] = None
    messages: Annotated[
        list[ChatMessage] | None,
        Meta(
            description="Chat messages, instead of `prompt`.",
            extra=says(message="'messages' must be an array of messages.", code="invalid_type"),
        ),
    ] = None


# What a type cannot say: one of the two inputs (checked in ``check_tokenize``).
_TOKENIZE_INPUT = Says(
    message="'prompt' (a string) or 'messages' (an array of messages) is required.",
    code="missing_required_parameter",
)
SCHEMA_EXTRAS = {
    "TokenizeRequest": {
        "anyOf": [
            {"required": ["prompt"], "properties": {"prompt": {"type": "string"}}},
            {"required": ["messages"], "properties": {"messages": {"type": "array"}}},
        ]
    }
}


def check_tokenize(request: TokenizeRequest) -> None:
    if request.prompt is None and request.messages is None:
        raise _TOKENIZE_INPUT.error("prompt")


class DetokenizeRequest(msgspec.Struct, kw_only=True, gc=False):
    """vLLM's tokenizer backwards: the text of `tokens`. Fields not listed here are passed
    to the upstream unchanged."""

    model: ModelName = None
    tokens: Annotated[
        list[TokenId],
        Meta(
            description="Token ids of the model's vocabulary.",
            extra=says(
                required="'tokens' is required: an array of token ids.",
                message="'tokens' must be an array of token ids (integers from 0).",
                code="invalid_value",
                inner=True,
            ),
        ),
    ]


# -- Tabby -----------------------------------------------------------------------------

_SNIPPET_FIELD = says(
    message="'{parent}': 'filepath' and 'body' must be strings.",
    code="invalid_type",
    param="{grandparent}",
)


class TabbySnippet(msgspec.Struct, gc=False):
    body: Annotated[str, Meta(extra=_SNIPPET_FIELD)]
    filepath: Annotated[str, Meta(extra=_SNIPPET_FIELD)] = ""
    score: float | None = None


Snippets = (
    list[
        Annotated[
            TabbySnippet,
            Meta(
                extra=says(
                    message="'{path}' must be an object with 'filepath' and 'body'.",
                    code="invalid_type",
                    param="{parent}",
                )
            ),
        ]
    ]
    | None
)


class TabbySegments(msgspec.Struct, gc=False):
    prefix: Annotated[
        str,
        Meta(
            description="The text before the cursor.",
            extra=says(required="'segments.prefix' is required: the text before the cursor."),
        ),
    ]
    suffix: Annotated[str | None, _described("The text after the cursor.")] = None
    filepath: str | None = None
    git_url: str | None = None
    declarations: Annotated[
        Snippets, _described("Declarations of the symbols near the cursor.")
    ] = None
    relevant_snippets_from_changed_files: Snippets = None
    relevant_snippets_from_recently_opened_files: Snippets = None
    clipboard: str | None = None


Flag = Annotated[bool, Meta(extra=says(message="'{path}' must be true or false."))]


class TabbyDebugOptions(msgspec.Struct, gc=False):
    raw_prompt: Annotated[str | None, _described("Sent to the model as it is.")] = None
    return_prompt: Flag = False
    return_snippets: Flag = False
    disable_retrieval_augmented_code_completion: Annotated[
        Flag, _described("Leave the context snippets out of the prompt.")
    ] = False


class TabbyCompletionRequest(msgspec.Struct, kw_only=True, gc=False):
    """A Tabby completion request, told apart from an OpenAI one by `segments` (and no
    `prompt`). Kodify builds the fill-in-the-middle prompt for the Tabby model
    (`tabby.model_name`, else the first upstream's model) from its preprocessing config,
    then cleans the model's text up (stop words, repeats of the suffix, loops, the
    cursor's block)."""

    language: Annotated[
        str | None,
        _described(
            "VS Code's language id (`python`, `csharp`, `java`, `go`, `javascript`, "
            "`typescript`…); unknown ones get generic rules."
        ),
    ] = None
    segments: Annotated[
        TabbySegments,
        Meta(
            extra=says(
                message="'segments' must be an object with 'prefix' (and optionally 'suffix').",
                code="invalid_type",
            )
        ),
    ]
    model: Annotated[
        Annotated[str, Meta(pattern=r"\S")] | None,
        Meta(
            description="Not Tabby's: a model listed by `GET /v1/models`, instead of the "
            "Tabby model.",
            extra=says(message="'model' must be a non-empty string.", code="invalid_value"),
        ),
    ] = None
    user: str | None = None
    temperature: Temperature | None = None
    seed: Seed | None = None
    mode: str | None = None
    debug_options: TabbyDebugOptions | None = None


EventKind = Literal["view", "select", "dismiss"]
SelectKind = Literal["line"]  # Tabby's only kind of partial acceptance
UINT32_MAX = 2**32 - 1  # Tabby's own bound for its event numbers (u32)
# An id: printable ASCII, no space (Kodify's are ``cmpl-<uuid4>-<hex>``).  A text the
# client makes up: any character but the controls (PostgreSQL refuses NUL).  ``(?!\n)``:
# Python's ``$`` (msgspec's, jsonschema's) also matches before a last newline.
ID_PATTERN = r"^[\x21-\x7e]+$(?!\n)"
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$(?!\n)"


class TabbyEvent(msgspec.Struct, kw_only=True, gc=False):
    """What became of a completion in the editor; stored in the journal, linked to the
    completion's entry, for acceptance statistics. Taken only from the API token that got
    the completion (its id is signed for that token); another one gets a 404."""

    type: Annotated[
        EventKind,
        Meta(
            extra=says(
                message=f"'type' must be one of {', '.join(get_args(EventKind))}.",
                code="invalid_value",
            )
        ),
    ]
    completion_id: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=64,
            pattern=ID_PATTERN,
            description="The `id` of the completion's answer.",
            extra=says(
                message="'completion_id' must be the id of a completion "
                "(at most 64 printable ASCII characters, no spaces).",
                code="invalid_value",
            ),
        ),
    ]
    choice_index: Annotated[
        Annotated[int, Meta(ge=0, le=INT32_MAX)]
        | Annotated[float, Meta(ge=0, le=INT32_MAX, multiple_of=1)]
        | None,
        Meta(
            extra=says(
                message="'choice_index' must be a non-negative integer.",
                value=f"'choice_index' must be an integer from 0 to {INT32_MAX}.",
            )
        ),
    ] = None
    view_id: Annotated[
        Annotated[str, Meta(max_length=128, pattern=TEXT_PATTERN)] | None,
        Meta(
            extra=says(
                message="'view_id' must be a string.",
                value="'view_id' must have at most 128 characters, none of them a control "
                "character.",
            )
        ),
    ] = None
    elapsed: Annotated[
        Annotated[int, Meta(ge=0, le=UINT32_MAX)]
        | Annotated[float, Meta(ge=0, le=UINT32_MAX)]
        | None,
        Meta(
            description="Milliseconds the completion was shown.",
            extra=says(
                message="'elapsed' must be a non-negative number of milliseconds.",
                value=f"'elapsed' must be a number of milliseconds from 0 to {UINT32_MAX}.",
            ),
        ),
    ] = None


class TabbyEventQuery(msgspec.Struct, kw_only=True, gc=False):
    """The query string of ``POST /v1/events`` (the OpenAPI document's parameters)."""

    select_kind: Annotated[
        SelectKind | None,
        Meta(
            description="`line` when only a line of the completion was taken.",
            extra=says(
                message=f"'select_kind' must be one of {', '.join(get_args(SelectKind))}.",
                code="invalid_value",
            ),
        ),
    ] = None


# The components of the OpenAPI document, in its order; the Structs they use come along.
class ActionRequest(msgspec.Struct, kw_only=True, gc=False):
    """An assistant action (`POST /v1/actions/{action}`): the code to document, fix, test
    or explain, and its language; the server builds the chat messages from its template
    for that action and language."""

    code: Annotated[
        str,
        Meta(
            pattern=r"\S",
            description="The code to work on (the selection, or the whole file).",
            extra=says(
                required="'code' is required: the code to work on.",
                message="'code' must be a string with some code in it.",
            ),
        ),
    ]
    language: (
        Annotated[
            str,
            Meta(
                max_length=64,
                description="The code's language (python, csharp, java, go, javascript, "
                "typescript, or any other name: a generic template is used). Omitted: "
                "from `filepath`'s extension.",
            ),
        ]
        | None
    ) = None
    filepath: (
        Annotated[str, Meta(max_length=1024, description="The file the code comes from.")] | None
    ) = None
    context: (
        Annotated[
            str, Meta(description="Surrounding code, for reference (not changed by the answer).")
        ]
        | None
    ) = None
    instructions: (
        Annotated[
            str, Meta(max_length=4000, description="The user's own words added to the request.")
        ]
        | None
    ) = None
    model: ModelName = None
    stream: bool | None = False
    temperature: Temperature | None = None
    max_tokens: TokenCount | None = None


DOCUMENTED = (
    ActionRequest,
    ChatCompletionRequest,
    CompletionRequest,
    TokenizeRequest,
    DetokenizeRequest,
    TabbyCompletionRequest,
    TabbyEvent,
)
