"""Checking a decoded body against its msgspec type, with the gateway's 400 answers.

msgspec checks a body in C, but says what is wrong in its own words (``Expected `int` >=
1 - at `$.n```).  Clients get OpenAI's error body instead, naming the field in ``param``
and wording the rule as the gateway always has.  The wording comes from the field's type
(``'n' must be at least 1.``) or, where the API has words of its own, from a ``Says``
attached to the type with ``Meta(extra=says(...))``.

Only a refused body pays for the translation.  It reads msgspec's message texts, whose
shape is pinned with msgspec's version in pyproject.toml and covered, field by field, by
gateway/tests/test_request_validation.py; a text it cannot read still gives a 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import msgspec
from msgspec import inspect as mi

from gateway.errors import OpenAIError, bad_request

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Says:
    """How a field's 400 is worded where its type's wording would not do.

    Texts are templates: ``{path}`` is the field's place in the body (``messages[0].role``),
    ``{parent}`` and ``{grandparent}`` its containers' places (``messages[0]``, ``messages``).
    """

    message: str | None = None  # any failure: a wrong type, a value out of range, missing
    required: str | None = None  # missing or null; its code is missing_required_parameter
    value: str | None = None  # the right type, but out of range (instead of ``message``)
    code: str | None = None  # for ``message`` and ``value``; else by the kind of failure
    param: str = "{path}"
    inner: bool = False  # also for a failure inside the field (an item of its list)

    def error(self, param: str, **places: str) -> OpenAIError:
        """This wording's error for a failure the gateway found itself, after msgspec."""
        assert self.message is not None
        return bad_request(self.message.format(**places), param=param, code=self.code)


def says(**wording: Any) -> dict[str, Says]:
    """What ``Meta(extra=...)`` takes to attach a ``Says`` to a type."""
    return {"says": Says(**wording)}


def convert(body: dict[str, Any], kind: type[T]) -> T:
    """``body`` as a ``kind``; an ``OpenAIError`` (400) naming the first bad field if not."""
    try:
        return msgspec.convert(body, kind)
    except msgspec.ValidationError as exc:
        raise explain(kind, body, str(exc)) from None


# -- reading msgspec's error -----------------------------------------------------------

_WHERE = re.compile(r"(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_STEP = re.compile(r"\.(?P<name>[^.\[]+)|\[(?P<index>\d+)\]")
_CODES = {
    "required": "missing_required_parameter",
    "type": "invalid_type",
    "value": "invalid_value",
}
_ABSENT = object()


@dataclass(frozen=True, slots=True)
class _Node:
    """A field or an item on the way to the bad value."""

    path: str
    type: mi.Type
    value: Any  # _ABSENT for a missing field
    required: bool  # a field without a default
    says: Says | None


def explain(kind: type, body: Any, text: str) -> OpenAIError:
    """The 400 for msgspec's ``text`` about ``body`` (checked as a ``kind``)."""
    where = _WHERE.fullmatch(text)
    assert where is not None  # the pattern matches any text
    what, path = where["what"], where["path"] or ""
    matches = list(_STEP.finditer(path))
    if "".join(match[0] for match in matches) != path:
        return _unexplained(text)
    steps: list[str | int] = [
        match["name"] if match["name"] is not None else int(match["index"]) for match in matches
    ]
    missing = _MISSING.fullmatch(what)
    if missing:
        steps.append(missing["field"])
    nodes = _walk(_type_info(kind), steps, body)
    if not nodes:
        return _unexplained(text)
    leaf = nodes[-1]
    if missing or (what.endswith(", got `null`") and leaf.required):
        failure = "required"  # a required field sent as null is a field not sent
    elif ", got `" in what:
        failure = "type"
    else:
        failure = "value"
    for index in range(len(nodes) - 1, -1, -1):
        node = nodes[index]
        if node.says is not None and (node is leaf or node.says.inner):
            worded = _worded(node.says, failure, nodes[: index + 1])
            if worded is not None:
                return worded
            break
    return _generic(failure, leaf)


@cache
def _type_info(kind: type) -> mi.Type:
    return mi.type_info(kind)  # close to a millisecond each time for a request's Struct


def _unexplained(text: str) -> OpenAIError:
    return bad_request(f"The request body is invalid: {text}.")


def _walk(root: mi.Type, steps: list[str | int], body: Any) -> list[_Node]:
    nodes: list[_Node] = []
    current, path, value = root, "", body
    for step in steps:
        found = _child(current, step)
        if found is None:
            return []
        current, required = found
        path = _place(path, step)
        value = _item(value, step)
        nodes.append(_Node(path, current, value, required, _says_of(current, value)))
    return nodes


def _place(path: str, step: str | int) -> str:
    if isinstance(step, int):
        return f"{path}[{step}]"
    return f"{path}.{step}" if path else step


def _branches(kind: mi.Type) -> list[mi.Type]:
    """The types a value may have here: through ``Annotated`` and unions."""
    if isinstance(kind, mi.Metadata):
        return _branches(kind.type)
    if isinstance(kind, mi.UnionType):
        return [branch for member in kind.types for branch in _branches(member)]
    return [kind]


def _child(kind: mi.Type, step: str | int) -> tuple[mi.Type, bool] | None:
    """The type of a field or an item of ``kind``, and whether it is a required field."""
    for branch in _branches(kind):
        if isinstance(step, str) and isinstance(branch, mi.StructType):
            for field in branch.fields:
                if field.encode_name == step:
                    return field.type, field.required
        if isinstance(step, int) and isinstance(branch, mi.ListType):
            return branch.item_type, False
    return None


def _item(value: Any, step: str | int) -> Any:
    if isinstance(step, str) and isinstance(value, dict):
        return value.get(step, _ABSENT)
    if isinstance(step, int) and isinstance(value, list) and step < len(value):
        return value[step]
    return _ABSENT


# The Python types of decoded JSON each kind of msgspec type takes.
_TAKES: dict[type, tuple[type, ...]] = {
    mi.NoneType: (type(None),),
    mi.BoolType: (bool,),
    mi.IntType: (int,),
    mi.FloatType: (int, float),
    mi.StrType: (str,),
    mi.LiteralType: (str, int),
    mi.ListType: (list,),
    mi.StructType: (dict,),
    mi.DictType: (dict,),
}


def _says_of(kind: mi.Type, value: Any) -> Says | None:
    """The ``Says`` on this type; in a union, on the member ``value`` is meant for."""
    if isinstance(kind, mi.Metadata):
        found = (kind.extra or {}).get("says")
        return found if isinstance(found, Says) else _says_of(kind.type, value)
    if isinstance(kind, mi.UnionType):
        for member in kind.types:
            takes = tuple(t for b in _branches(member) for t in _TAKES.get(type(b), ()))
            if isinstance(value, takes) and not (isinstance(value, bool) and bool not in takes):
                return _says_of(member, value)
    return None


# -- wording ---------------------------------------------------------------------------


def _worded(says: Says, failure: str, nodes: list[_Node]) -> OpenAIError | None:
    places = {
        "path": nodes[-1].path,
        "parent": nodes[-2].path if len(nodes) > 1 else "",
        "grandparent": nodes[-3].path if len(nodes) > 2 else "",
    }
    message: str | None
    if failure == "required" and says.required:
        message, code = says.required, _CODES["required"]
    else:
        message = (says.value if failure == "value" else None) or says.message
        code = says.code or _CODES[failure]
    if message is None:
        return None
    return bad_request(message.format(**places), param=says.param.format(**places), code=code)


def _generic(failure: str, leaf: _Node) -> OpenAIError:
    path, value = leaf.path, leaf.value
    if failure == "required":
        return bad_request(f"'{path}' is required.", param=path, code=_CODES["required"])
    if failure == "type":
        return bad_request(
            f"'{path}' must be {kind_of(leaf.type)}.", param=path, code="invalid_type"
        )
    rule, code = _rule(leaf.type, value)
    return bad_request(f"'{path}' {rule}.", param=path, code=code)


_KINDS: dict[type, str] = {
    mi.IntType: "an integer",
    mi.FloatType: "a number",
    mi.StrType: "a string",
    mi.BoolType: "a boolean",
    mi.StructType: "an object",
    mi.DictType: "an object",
    mi.ListType: "an array",
}


def kind_of(kind: mi.Type) -> str:
    """What a value of this type is, in words: ``an integer``, ``a string or an array``."""
    kinds: list[str] = []
    for branch in _branches(kind):
        if isinstance(branch, mi.FloatType) and branch.multiple_of == 1:
            word = "an integer"  # the integral floats that an integer field takes too
        elif isinstance(branch, mi.LiteralType):
            word = "one of " + ", ".join(map(str, branch.values))
        else:
            word = _KINDS.get(type(branch), "")
        if word and word not in kinds:
            kinds.append(word)
    return " or ".join(kinds) or "a value"


def _rule(kind: mi.Type, value: Any) -> tuple[str, str]:
    """The rule ``value`` (of the right type) breaks, and the error's code."""
    integral = kind_of(kind) == "an integer"
    branches = _branches(kind)
    if _is_number(value):
        if integral and isinstance(value, float) and not value.is_integer():
            return "must be an integer", "invalid_type"
        numbers = [branch for branch in branches if isinstance(branch, mi.IntType | mi.FloatType)]
        if numbers:
            # Integers are told the integer bounds (those the document shows), whether
            # the value came as an integer or as a float.
            ints = [branch for branch in numbers if isinstance(branch, mi.IntType)]
            bounds = (ints if integral and ints else numbers)[0]
            return _number_rule(bounds, value, integral), "invalid_value"
    for branch in branches:
        if isinstance(branch, mi.StrType | mi.ListType) and isinstance(value, str | list):
            if isinstance(branch, mi.StrType) != isinstance(value, str):
                continue
            noun = "characters" if isinstance(value, str) else "items"
            if branch.min_length is not None and len(value) < branch.min_length:
                if branch.min_length == 1:
                    return "must not be empty", "invalid_value"
                return f"must have at least {branch.min_length} {noun}", "invalid_value"
            if branch.max_length is not None and len(value) > branch.max_length:
                return f"must have at most {branch.max_length} {noun}", "invalid_value"
            pattern = getattr(branch, "pattern", None)
            if pattern is not None:
                return f"must match the pattern {pattern}", "invalid_value"
        if isinstance(branch, mi.LiteralType):
            return "must be " + kind_of(branch), "invalid_value"
    return "is not a valid value", "invalid_value"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_rule(bounds: mi.IntType | mi.FloatType, value: float, integral: bool) -> str:
    low, high = bounds.ge, bounds.le

    def show(bound: float) -> str:
        return str(int(bound)) if integral else f"{bound:g}"

    if low is not None and high is not None and not integral:
        return f"must be between {show(low)} and {show(high)}"
    if low is not None and value < low:
        return f"must be at least {show(low)}"
    if high is not None and value > high:
        return f"must be at most {show(high)}"
    if low is not None and high is not None:  # an integer past 64 bits, decoded as a float
        return f"must be between {show(low)} and {show(high)}"
    return "is out of range"
