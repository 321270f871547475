"""Assistant actions: document, fix, test and explain code, with prompts the server owns.

A client sends only the code, its language and, optionally, its file path, surrounding
code and a few words of its own; the server turns them into the chat messages for the
action.  The prompts live here rather than in each editor plugin because:

* every plugin, and every version of it, then gets the same answers from the same model,
  and a better prompt reaches all of them with a server upgrade, without a client release;
* the prompt must match the model the gateway serves (what a 7B coder model follows is
  not what a frontier model follows), and only the server knows which model that is;
* the answer's shape is a contract with the plugins that apply it ("exactly one fenced
  block first"), so it belongs with the server that promises it;
* plain OpenAI-compatible plugins, which cannot build such prompts, get the actions too
  through "action models" (``<model>:<action>``, see :mod:`gateway.actions.templates`).

Building the messages runs on the request path: plain string operations, no I/O, no ORM.
"""

from __future__ import annotations

# The order is the one clients show them in.
ACTIONS: tuple[str, ...] = ("docs", "fix", "tests", "explain")

# What the gateway's consumers call, in one place (after ACTIONS, which these import).
from gateway.actions.listing import action_cards  # noqa: E402
from gateway.actions.templates import (  # noqa: E402
    action_and_model,
    build_messages,
    messages_for_chat,
)

__all__ = ["ACTIONS", "action_and_model", "action_cards", "build_messages", "messages_for_chat"]
