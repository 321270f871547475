"""The console's preview of a template: the exact chat messages a sample request gets.

Built by :func:`~gateway.actions.templates.build_messages`, the function requests use,
from the text in the form (saved or not), so what the preview shows is what the model
will be sent.
"""

from __future__ import annotations

from gateway.actions.languages import SAMPLES
from gateway.actions.templates import Template, build_messages

SAMPLE_INSTRUCTIONS = "Keep the public names unchanged."


def preview_messages(
    *, action: str, language: str, template: Template, code: str | None = None
) -> list[dict[str, str]]:
    """The messages for the sample request of ``language`` (a language id, or "" for the
    generic template), with ``code`` instead of the sample's code when given.

    Raises:
        ValueError: the template does not format, or there is no code; the message says
            why in a sentence.
    """
    sample = SAMPLES.get(language)
    if sample is None:
        raise ValueError(f"Unknown language {language!r}: there is no sample for it.")
    return build_messages(
        action,
        code=sample.code if code is None else code,
        language=sample.language,
        filepath=sample.filepath,
        instructions=SAMPLE_INSTRUCTIONS,
        template=template,
    )
