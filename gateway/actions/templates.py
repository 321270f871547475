"""The prompts of the assistant actions, and the chat messages built from them.

Each action has one system prompt per known language, written once from the language's
conventions (:class:`~gateway.actions.languages.Language`), and a generic one that names
the language as the client gave it.  The system prompt carries the rules and the answer's
shape, because models weigh it most and because plugins depend on that shape: ``fix`` and
``docs`` answers are applied to the editor's buffer by taking the first fenced block, and
``tests`` answers are saved as a file.  The user message carries only the material: file
path, surrounding code, the code, the user's own words.

Both parts of a :class:`Template` are :meth:`str.format_map` format strings over the
placeholders in :data:`PLACEHOLDERS`.  The code is a value, never part of a format string,
so braces in it are safe; the shipped system prompts escape the braces their conventions
quote (JSDoc's ``{type}``).

The shipped prompts are the defaults: an administrator can replace the one of an action
and language in the console (``gateway.models.ActionTemplate``).  Each worker keeps those
in memory (:mod:`gateway.actions.overrides`) and hands them to :func:`build_messages`.

Plugins that speak only the OpenAI API reach the actions through "action models": a
chat request for ``qwen2.5-coder-7b:explain`` is turned by :func:`messages_for_chat` into
the ``explain`` prompt for the code in its last user message, then sent to
``qwen2.5-coder-7b``.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.actions import ACTIONS
from gateway.actions.languages import Language, code_from_message, extension, resolve_language

PLACEHOLDERS: tuple[str, ...] = (
    "language",  # the language's name, as given for an unknown one, or "the code's language"
    "code",
    "fence",  # the Markdown fence tag ("" when the language is unknown)
    # ``` by default, longer when the code itself holds a run of backticks: a fence the
    # code could close would cut it short.
    "ticks",
    # Each of these three is "" when absent, and otherwise carries its own heading and
    # blank lines, so an absent one leaves no empty section behind.
    "filepath_line",
    "context_block",
    "instructions_block",
)

UNKNOWN_LANGUAGE = "the code's language"
# The placeholders as an operator writes them, for messages and help texts.
PLACEHOLDER_LIST = ", ".join("{" + name + "}" for name in PLACEHOLDERS)


@dataclass(frozen=True, slots=True)
class Template:
    system: str
    user: str


@dataclass(frozen=True, slots=True)
class _Facts:
    """The language-dependent words of the system prompts.

    Known languages fill them from their :class:`Language` (escaped: the result is a
    format string); the generic prompts use the ``{language}`` placeholder instead, each
    phrase built so that it reads well with "rust" as with "the code's language".
    """

    expert: str
    the_code: str
    follow: str  # a sentence asking for the language's conventions, or ""
    doc_convention: str
    test_framework: str
    test_file_rule: str
    idioms: str
    fence_rule: str


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _known(language: Language) -> _Facts:
    name = _escape(language.name)
    return _Facts(
        expert=f"an expert {name} developer",
        the_code=f"the {name} code",
        follow="",
        doc_convention=_escape(language.doc_convention),
        test_framework=_escape(language.test_framework),
        test_file_rule=(
            "The first line of the file is a comment naming it, such as "
            f"`{_escape(language.test_file_line)}`."
        ),
        idioms=_escape(language.idioms),
        fence_rule=f"tagged `{_escape(language.fence)}`",
    )


_GENERIC = _Facts(
    expert="an expert software developer",
    the_code="the code",
    follow="Follow the conventions of {language}. ",
    doc_convention=(
        "the standard documentation-comment convention of {language}, the one its "
        "documentation tools read, with its usual tags or sections for parameters, return "
        "values and errors."
    ),
    test_framework=(
        "the usual test framework of {language}, with its conventions for file names, "
        "assertions and cases of one behaviour."
    ),
    test_file_rule=(
        "The first line of the file is a comment naming it, as that framework names test files."
    ),
    idioms=(
        "Use the standard library of {language} and its usual constructs for resource "
        "cleanup and error handling."
    ),
    fence_rule="tagged with the Markdown language tag of {language}",
)

_KEEP_FORMAT = "Follow the user's additional instructions, but always keep this answer format."


def _docs(facts: _Facts) -> str:
    return f"""\
You are {facts.expert} who writes clear, accurate documentation.

Add documentation to {facts.the_code} the user sends. {facts.follow}\
Convention: {facts.doc_convention}
Document every module, class, function and method a reader needs: its purpose, each \
parameter, the return value, and the errors it raises or returns. Say what each one is for \
and why, not how it works line by line, and describe only what the code really does. \
Keep the existing comments that are still correct and correct the wrong ones.
Change no behaviour: do not rename, reorder, reformat or refactor anything and do not \
edit the code itself; only add or correct documentation.

Answer with the whole documented code in exactly one fenced code block \
{facts.fence_rule}, with nothing before it and nothing after it. {_KEEP_FORMAT}"""


def _fix(facts: _Facts) -> str:
    return f"""\
You are {facts.expert} reviewing code for bugs.

Find the bugs in {facts.the_code} the user sends: logic errors, unhandled edge cases \
(empty input, missing values, zero, boundaries, overflow), resource leaks, missing or \
wrong error handling, and concurrency issues (races, deadlocks, leaked threads or tasks). \
{facts.follow}Fix each bug idiomatically. {facts.idioms}
Keep the fix minimal: keep names, signatures, structure and style, and change nothing \
that is not a bug (no refactoring, no new features, no style-only edits).

Answer in this order:
1. First, the complete corrected code in exactly one fenced code block \
{facts.fence_rule}: all of the code the user sent, not a diff or an excerpt, so that it \
can replace the original as it is. Nothing before this block, and no other code block \
anywhere in the answer.
2. Then a short list of what was wrong and why, one line per bug, naming the function \
or line concerned.
If there is no bug, return the code unchanged in the block, then say that you found no \
bug. {_KEEP_FORMAT}"""


def _tests(facts: _Facts) -> str:
    return f"""\
You are {facts.expert} who writes thorough, maintainable unit tests.

Write unit tests for {facts.the_code} the user sends. {facts.follow}\
Framework: {facts.test_framework}
Cover the normal cases, the edge cases (empty input, zero, boundaries, missing values) \
and the error cases (the errors the code raises or returns). Test one behaviour per test, \
name each test after what it checks, test through the public interface, and fake only \
what the code reaches outside itself.
The file must run as it is: every import included, the code under test imported from \
its module (named after the file path when one is given), no placeholders, no TODOs, \
nothing left to fill in. The tests must not depend on the network, the current date or \
time, randomness or the order they run in: use fakes and fixed values instead.
If the code has a bug, test the correct behaviour and say so in a comment in that test.

Answer with ONE complete, runnable test file in exactly one fenced code block \
{facts.fence_rule}. {facts.test_file_rule} Nothing before the block; after it, at most \
one sentence on how to run the tests. {_KEEP_FORMAT}"""


def _explain(facts: _Facts) -> str:
    return f"""\
You are {facts.expert} explaining code to a developer who did not write it.

Explain {facts.the_code} the user sends, covering in this order:
- Purpose: what the code is for, in one or two sentences.
- Inputs and outputs: parameters, return values, side effects (I/O, state it changes) \
and the errors it raises.
- How it works: step by step, in the order it runs, one step per meaningful action \
rather than per line.
- Notable details: idioms, algorithms, data structures and non-obvious choices a reader \
could miss.
- Potential pitfalls: edge cases it mishandles, performance, thread-safety or security \
concerns, surprises for a caller.

Be concise: skip what the code says plainly; no preamble, no restating of the whole \
code, no rewritten version. Quote identifiers, expressions and file names in backticks, \
like `this`."""


_SYSTEMS = {"docs": _docs, "fix": _fix, "tests": _tests, "explain": _explain}

_TASKS = {
    "docs": "Add documentation to this code:",
    "fix": "Find and fix the bugs in this code:",
    "tests": "Write unit tests for this code:",
    "explain": "Explain this code:",
}

# One user layout for every language: the language lives in the system prompt and in the
# fence tag.  The file path first, then the context, then the code nearest the question.
_USER = "{filepath_line}{context_block}%s\n\n{ticks}{fence}\n{code}\n{ticks}{instructions_block}"

assert set(_SYSTEMS) == set(_TASKS) == set(ACTIONS)


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        raise ValueError(f"Unknown action {action!r}: the actions are {', '.join(ACTIONS)}.")


@functools.lru_cache(maxsize=64)
def _shipped(action: str, language: Language | None) -> Template:
    facts = _GENERIC if language is None else _known(language)
    return Template(system=_SYSTEMS[action](facts), user=_USER % _TASKS[action])


def shipped_template(action: str, language: Language | None) -> Template:
    """The prompts the server ships for ``action``: the language's own, else the generic.

    Built once per action and language (a cache), so a request only formats them.
    """
    _check_action(action)
    return _shipped(action, language)


_FORMATTER = string.Formatter()


def format_problem(text: str) -> str | None:
    """What keeps ``text`` from being one part of a :class:`Template`, as the end of a
    sentence ("… has a single {"); None when it formats.

    Checked where an operator saves a template, so that a stray brace is a form error
    there rather than a 400 on every request for that action.  Placeholders are plain
    names: an attribute, an index, a conversion or a format spec would let a template
    reach into the values or fail on some of them.
    """
    try:
        fields = list(_FORMATTER.parse(text))
    except ValueError:
        return (
            "has a single { or } that opens or closes no placeholder (write {{ or }} for "
            "a literal brace)"
        )
    for _literal, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            return f"uses {{{name}}}, which is not a placeholder"
        if spec or conversion:
            return f"writes {{{name}}} with a conversion or format spec; write {{{name}}} alone"
    return None


def template_key(action: str, language: Language | None) -> tuple[str, str]:
    """Where an operator's template for ``action`` in ``language`` is kept: the language's
    id, or "" for the generic template (any language the server does not know)."""
    return action, language.id if language is not None else ""


def _ticks(code: str) -> str:
    """A backtick fence longer than any run of backticks in ``code``."""
    ticks = "```"
    while ticks in code:
        ticks += "`"
    return ticks


def _fence_tag(language: str | None, filepath: str | None) -> str:
    """A fence tag for a language the server does not know: the name if it is one word
    (``rust``, ``c++``), else the file's extension (``rs``), else none."""
    if language:
        tag = language.strip().lower()
        if tag and all(char.isalnum() or char in "+-#._" for char in tag):
            return tag
    if filepath:
        suffix = extension(filepath)[1:]
        if suffix.isalnum():
            return suffix
    return ""


def build_messages(
    action: str,
    *,
    code: str,
    language: str | None = None,
    filepath: str | None = None,
    context: str | None = None,
    instructions: str | None = None,
    template: Template | None = None,
    overrides: Mapping[tuple[str, str], Template] | None = None,
) -> list[dict[str, str]]:
    """The chat messages (system, then user) that ask the model to perform ``action``.

    ``context`` is code around ``code`` that the model should see but not change;
    ``instructions`` are the user's own words.  ``template`` replaces the shipped prompts
    (an operator's own): it must use only :data:`PLACEHOLDERS`.  ``overrides``: the
    console's templates by :func:`template_key`, each replacing the shipped one for its
    action and language (the worker's in-memory copy: no query here).

    Raises:
        ValueError: for an unknown action, blank code, or a template that does not
            format; the HTTP layer answers 400 with the message.
    """
    _check_action(action)
    code = code.strip("\r\n").rstrip()
    if not code.strip():
        raise ValueError(f"There is no code to work on: the {action} action needs code.")
    found = resolve_language(language, filepath)
    if found is not None:
        name, fence = found.name, found.fence
    else:
        name = language.strip() if language and language.strip() else UNKNOWN_LANGUAGE
        fence = _fence_tag(language, filepath)
    filepath = filepath.strip() if filepath else ""
    context = context.strip("\r\n").rstrip() if context else ""
    instructions = instructions.strip() if instructions else ""
    context_block = ""
    if context:
        ticks = _ticks(context)
        context_block = (
            "Context (surrounding code, for reference only; do not change it):\n"
            f"{ticks}{fence}\n{context}\n{ticks}\n\n"
        )
    values = {
        "language": name,
        "code": code,
        "fence": fence,
        "ticks": _ticks(code),
        "filepath_line": f"File: {filepath}\n\n" if filepath else "",
        "context_block": context_block,
        "instructions_block": instructions and f"\n\nAdditional instructions:\n{instructions}",
    }
    if template is None and overrides:
        template = overrides.get(template_key(action, found))
    template = template or _shipped(action, found)
    try:
        system = template.system.format_map(values)
        user = template.user.format_map(values)
    except (KeyError, IndexError, AttributeError, ValueError) as error:
        raise ValueError(
            f"The {action} template does not format ({error!r}): it may use only the "
            f"placeholders {', '.join('{' + key + '}' for key in PLACEHOLDERS)}, and a "
            "literal brace must be doubled."
        ) from error
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def action_model_name(model: str, action: str) -> str:
    """The model name under which an OpenAI plugin reaches ``action`` on ``model``."""
    _check_action(action)
    return f"{model}:{action}"


def action_and_model(model: str) -> tuple[str, str] | None:
    """``(model, action)`` for an action model name, None for an ordinary model name.

    Only the last colon counts, and only when an action follows it: model names carry
    colons of their own (``llama3:8b``), and ``llama3:8b:fix`` is the ``fix`` action on
    ``llama3:8b``.
    """
    base, colon, action = model.rpartition(":")
    if colon and base and action in ACTIONS:
        return base, action
    return None


def _text(content: Any) -> str:
    """A message's text: a string, or OpenAI's list of content parts (text parts joined
    by line breaks, so that a fence starting a part still starts a line; images and
    other parts dropped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        )
    return ""


_SYSTEM_ROLES = ("system", "developer")  # "developer": OpenAI's newer name for system


def messages_for_chat(
    action: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    overrides: Mapping[tuple[str, str], Template] | None = None,
) -> list[dict[str, Any]]:
    """The messages to send upstream for a chat request made to an action model
    (``overrides``: the console's templates, as for :func:`build_messages`).

    The last user message is the one to act on: its last fenced block is the code (its
    tag or file name gives the language) and the rest of its text the user's
    instructions.  The earlier user and assistant turns are kept for follow-up questions;
    the client's own system message goes, since the action's replaces it.  The new system
    message comes first, not just before the last turn: many models' chat templates
    accept a system message only there, and some reject the request otherwise.
    Anything after the last user message (an assistant prefill) is dropped.

    Raises:
        ValueError: for an unknown action, no user message, or one without text.
    """
    _check_action(action)
    last = next(
        (
            index
            for index in range(len(messages) - 1, -1, -1)
            if messages[index].get("role") == "user"
        ),
        None,
    )
    if last is None:
        raise ValueError(f"The request has no user message: the {action} action needs code.")
    text = _text(messages[last].get("content"))
    if not text.strip():
        raise ValueError(
            f"The last user message has no text: the {action} action needs code in it."
        )
    extracted = code_from_message(text)
    system, user = build_messages(
        action,
        code=extracted.code,
        language=extracted.language_tag,
        filepath=extracted.filepath,
        instructions=extracted.instructions,
        overrides=overrides,
    )
    earlier = [
        dict(message) for message in messages[:last] if message.get("role") not in _SYSTEM_ROLES
    ]
    return [system, *earlier, user]
