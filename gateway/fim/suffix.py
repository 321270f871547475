"""OpenAI completions with ``prompt`` + ``suffix``, for model servers that refuse ``suffix``.

vLLM answers such a request with an error for every model, yet plugins written against
OpenAI's API send it for fill-in-the-middle.  When the model's preprocessing config says
the upstream cannot take ``suffix``, the gateway lays prompt and suffix out in the model's
FIM template itself and adds the model's FIM tokens to ``stop``.  The client's texts are
used as they are (no budget, no snippets): an OpenAI client built its own prompt.

A config that knows no place for the suffix (``generic``, a model no config matched)
cannot serve such a request: the client gets Kodify's 400 naming the model and the
setting that gives it a template, rather than the upstream's refusal of ``suffix``.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import OpenAIError
from gateway.fim.profiles import UPSTREAM_STOP_LIMIT, FimProfile

_KEYS = ("prompt", "suffix", "stop")


class SuffixRewrite:
    """Rewrites one request body for the config of the replica it is sent to."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.original = {key: body[key] for key in _KEYS if key in body}
        self.profile: FimProfile | None = None

    @staticmethod
    def wanted(body: dict[str, Any]) -> bool:
        return isinstance(body.get("suffix"), str)

    @staticmethod
    def check(profile: FimProfile, model: str) -> None:
        """Refuse (400) when neither ``profile``'s template nor its server takes a suffix."""
        if profile.upstream_accepts_suffix or profile.uses_suffix:
            return
        raise OpenAIError(
            400,
            f"The model '{model}' has no fill-in-the-middle template (preprocessing config "
            f"'{profile.name}'), and its server does not take 'suffix'. Send the prompt "
            f"without 'suffix'; or an administrator can give '{model}' a preprocessing "
            f"config: in the console (Models > {model} > Preprocessing), or as its "
            "upstream's 'preprocessing' in config.yml.",
            param="suffix",
            code="suffix_not_supported",
        )

    def apply(self, body: dict[str, Any], profile: FimProfile) -> bool:
        """Lay ``body`` out for ``profile``; True when the body changed."""
        if profile is self.profile:
            return False
        changed = self.profile is not None and self._restore(body)
        self.profile = profile
        if profile.upstream_accepts_suffix:
            return changed
        prompt, suffix = body.get("prompt"), body.get("suffix")
        if not isinstance(suffix, str):
            return changed
        if isinstance(prompt, str):
            body["prompt"] = profile.render(prompt, suffix)
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            body["prompt"] = [profile.render(p, suffix) for p in prompt]
        else:  # token ids: only the model server can place a suffix among them
            return changed
        del body["suffix"]
        body["stop"] = _merged_stop(body.get("stop"), profile.stop)
        return True

    def _restore(self, body: dict[str, Any]) -> bool:
        for key in _KEYS:
            if key in self.original:
                body[key] = self.original[key]
            else:
                body.pop(key, None)
        return True


def _merged_stop(client: Any, model: tuple[str, ...]) -> list[str]:
    """The client's stop sequences, then the model's while vLLM's limit of four allows."""
    if isinstance(client, str):
        stops = [client]
    elif isinstance(client, list):
        stops = [stop for stop in client if isinstance(stop, str)]
    else:
        stops = []
    room = max(UPSTREAM_STOP_LIMIT - len(stops), 0)
    return stops + [stop for stop in model if stop not in stops][:room]
