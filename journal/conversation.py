"""A chat request's messages as the detail page shows them: one block per message.

What is read here is a stored body, written by an API user: nothing in it is trusted
(the template escapes every text) and nothing in it may break the page, so any shape
this does not know falls back to the raw JSON the page shows anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Roles with a look of their own in console.css; any other is shown as written.
STYLED_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(frozen=True)
class Message:
    role: str
    text: str
    note: str = ""  # the tool call a tool message answers, a participant's name

    @property
    def style(self) -> str:
        return self.role if self.role in STYLED_ROLES else "other"


def chat_messages(body: str) -> list[Message] | None:
    """The messages of a chat request's body; None for any other body (a completion, a
    Tabby request, one cut short by the journal's limit)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list) or not messages:
        return None
    if not all(isinstance(message, dict) for message in messages):
        return None
    return [_message(message) for message in messages]


def _message(message: dict[str, Any]) -> Message:
    role = message.get("role")
    pieces = [_content(message.get("content"))]
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        pieces.extend(_tool_call(call) for call in calls)
    notes = [
        f"{label} {message[key]}"
        for key, label in (("name", "name"), ("tool_call_id", "answers"))
        if isinstance(message.get(key), str) and message[key]
    ]
    return Message(
        role=role if isinstance(role, str) and role else "?",
        text="\n".join(piece for piece in pieces if piece),
        note=", ".join(notes),
    )


def _content(content: Any) -> str:
    """A string; OpenAI's list of parts, each text part's text (other parts named); any
    other value as JSON."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                text = part.get("text")
                texts.append(text if isinstance(text, str) else _json(text))
            elif isinstance(part, dict) and isinstance(part.get("type"), str):
                texts.append(f"[{part['type']} part not shown]")
            else:
                texts.append(_json(part))
        return "\n".join(texts)
    return _json(content)


def _tool_call(call: Any) -> str:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        return f"[tool call] {_json(call)}"
    arguments = function.get("arguments")
    shown = arguments if isinstance(arguments, str) else _json(arguments)
    return f"[tool call] {function['name']}({shown})"


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
