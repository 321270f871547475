"""Autocompletion first: the ``priority`` a generation carries to an upstream whose vLLM
runs with ``--scheduling-policy priority`` (its ``priority_scheduling`` switch).

How vLLM reads it (its scheduler, 0.32): the waiting queue is a heap ordered by
``(priority, arrival time)``, so the *lowest* value is scheduled first and equal values go
first come, first served; and when the KV cache runs out, the running request with the
*highest* ``(priority, arrival time)`` is preempted first.  Requests that leave
``priority`` out count as 0.

A developer waits on an autocompletion at every pause in typing, and it is short; a chat
or an action streams for seconds and is read as it comes.  So autocompletion (a Tabby
completion, or an OpenAI completion with a ``suffix``: fill-in-the-middle) gets the band
``-1000 … -1`` and every other generation ``0 … 999``: under load the completions are
scheduled before any chat waiting beside them, and a chat is what gets preempted.  Chats
sit where vLLM puts requests that name no priority, so clients that reach the same vLLM
directly keep their place.

A client's own ``priority`` orders its request *within its class*: clamped to 0 … 999 and
added to the class's base.  It may ask to go after its peers (a batch job), never before
them (a negative value counts as 0) and never into the other class; a chat's 0 … 999
reaches vLLM unchanged.

An upstream without the switch never gets the field, the client's own included: vLLM's
request schema documents a priority other than 0 as an error where the policy is not
``priority`` (0.32 itself takes and ignores it), and under first come, first served it
would order nothing anyway.
"""

from __future__ import annotations

# How many priorities each class spans; a client's own is clamped into one span.
BAND = 1000
AUTOCOMPLETION_BASE = -BAND
OTHER_BASE = 0


def class_priority(*, autocompletion: bool, asked: int | None) -> int:
    """The priority of a generation on an upstream with priority scheduling.

    ``autocompletion``: a Tabby or fill-in-the-middle completion; ``asked``: the client's
    own ``priority`` (None: it sent none).
    """
    base = AUTOCOMPLETION_BASE if autocompletion else OTHER_BASE
    within = min(max(asked or 0, 0), BAND - 1)
    return base + within
