"""One Tabby autocompletion on its way through the gateway.

The prompt depends on the model family, and the family on the replica chosen (config.yml
may give one upstream its own config), so the prompt is built once the replica is known
and again only if a retry lands on a replica with another config.  The upstream is asked
for a plain non-streamed completion with the config's and the language's stop words; its
text is then cleaned up (``postprocess``) and answered in Tabby's shape.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import OpenAIError
from gateway.fim.languages import Language, language_for
from gateway.fim.postprocess import postprocess
from gateway.fim.profiles import UPSTREAM_STOP_LIMIT, FimProfile
from gateway.fim.prompt import FimPrompt, build_prompt
from gateway.tabby import CompletionRequest


class FimCompletion:
    """The upstream request for a Tabby completion, and the answer made of its reply."""

    stream = False
    generates = True  # vLLM schedules it (gateway/scheduling.py)

    def __init__(self, request: CompletionRequest) -> None:
        self.request = request
        self.language: Language = language_for(request.language, request.segments.filepath)
        self.model: str | None = request.model
        self.profile: FimProfile | None = None
        self.prompt: FimPrompt | None = None
        self.context_tokens: int | None = None
        self.priority: int | None = None  # vLLM's, where the upstream schedules by it
        self._body: bytes | None = None

    # -- the interface the proxy loop uses (as ProxyRequest's) ---------------------------

    def set_model(self, model: str) -> None:
        if model != self.model:
            self.model = model
            self._body = None

    def ask_for_usage(self) -> bool:
        return False  # a whole answer carries its usage already

    def asked_priority(self) -> int | None:
        return None  # Tabby's request has no priority of its own

    def set_priority(self, priority: int | None) -> None:
        if priority != self.priority:
            self.priority = priority
            self._body = None

    def use_profile(self, profile: FimProfile, *, context_tokens: int | None = None) -> None:
        """Build the prompt for ``profile`` within the model's context window."""
        if profile is self.profile and context_tokens == self.context_tokens:
            return
        self.profile = profile
        self.context_tokens = context_tokens
        request = self.request
        self.prompt = build_prompt(
            request.segments,
            profile=profile,
            language=self.language,
            use_context=not request.debug.disable_context,
            context_tokens=context_tokens,
        )
        self._body = None

    def upstream_body(self) -> bytes:
        if self._body is None:
            self._body = orjson.dumps(self._upstream_request())
        return self._body

    def _upstream_request(self) -> dict[str, Any]:
        profile, prompt, request = self.profile, self.prompt, self.request
        assert profile is not None and prompt is not None
        # The model's own end and FIM tokens are special tokens, which vLLM leaves out of
        # the text it matches stop strings against: they end generation as EOS or are cut
        # by postprocess(). The stop list is for the text that ends a completion.
        words = (
            ("\n", *self.language.stop_words) if prompt.single_line else self.language.stop_words
        )
        stop = list(dict.fromkeys(words))[:UPSTREAM_STOP_LIMIT]
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": request.debug.raw_prompt or prompt.prompt,
            "max_tokens": profile.max_tokens,
            "temperature": (
                request.temperature if request.temperature is not None else profile.temperature
            ),
            "stop": stop,
            "stream": False,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.user:
            body["user"] = request.user
        if self.priority is not None:
            body["priority"] = self.priority
        return body

    # -- the answer ----------------------------------------------------------------------

    def answer(self, upstream_answer: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        """Tabby's answer for the client, and the same with the usage for the journal."""
        profile, prompt = self.profile, self.prompt
        assert profile is not None and prompt is not None
        try:
            data = orjson.loads(upstream_answer)
            raw = data["choices"][0]["text"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            raise OpenAIError(
                502,
                "The upstream's answer was not an OpenAI completion (no choices[0].text).",
                code="upstream_error",
            ) from None
        if not isinstance(raw, str):
            raw = ""
        text = postprocess(
            raw.replace("\r\n", "\n"),
            prefix=prompt.prefix,
            suffix=prompt.suffix or self.request.segments.suffix.replace("\r\n", "\n"),
            language=self.language,
            single_line=prompt.single_line,
            stop=profile.stop,
        )
        if prompt.crlf:
            text = text.replace("\n", "\r\n")
        answer: dict[str, Any] = {
            "id": self.request.completion_id,
            "choices": [{"index": 0, "text": text}],
        }
        debug = self.request.debug
        if debug.wanted:
            answer["debug_data"] = self._debug_data()
        journal = dict(answer)
        usage = data.get("usage") if isinstance(data, dict) else None
        if isinstance(usage, dict):
            journal["usage"] = usage
        return answer, journal

    def _debug_data(self) -> dict[str, Any]:
        prompt, debug = self.prompt, self.request.debug
        assert prompt is not None
        data: dict[str, Any] = {}
        if debug.return_prompt:
            data["prompt"] = debug.raw_prompt or prompt.prompt
        if debug.return_snippets:
            data["snippets"] = [snippet.as_dict() for snippet in prompt.snippets]
        return data
