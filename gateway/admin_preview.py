"""The template editor's two small JSON views (the console's change form fetches them).

* ``preview``: the chat messages a sample request gets from the text in the form, saved
  or not, built by the very function requests use, so what it shows is what the model
  is sent;
* ``shipped``: the shipped text of an action and language, and its sample request, for a
  new template and for "Load the shipped text".

Both read nothing from the database: the permission checks are the model admin's.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from gateway.actions import ACTIONS
from gateway.actions.languages import LANGUAGES, SAMPLES
from gateway.actions.preview import preview_messages
from gateway.actions.templates import Template, shipped_template
from gateway.models import MAX_TEMPLATE_CHARS, ActionTemplate

BAD_REQUEST = 400


def _choice(request: HttpRequest) -> tuple[str, str] | JsonResponse:
    data = request.POST if request.method == "POST" else request.GET
    action, language = data.get("action", ""), data.get("language", "")
    if action not in ACTIONS:
        return _refused(f"Unknown action {action!r}: the actions are {', '.join(ACTIONS)}.")
    if language and language not in LANGUAGES:
        return _refused(
            f"Unknown language {language!r}: the languages are {', '.join(LANGUAGES)}, "
            "or none for the generic template."
        )
    return action, language


def _refused(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=BAD_REQUEST)


@require_POST
def preview(request: HttpRequest) -> HttpResponse:
    """``{"messages": [...]}``, or ``{"error": "..."}`` (400) saying what is wrong in the
    sentence a save would give."""
    choice = _choice(request)
    if isinstance(choice, JsonResponse):
        return choice
    action, language = choice
    system, user = request.POST.get("system", ""), request.POST.get("user", "")
    code = request.POST.get("code")
    if any(len(text) > MAX_TEMPLATE_CHARS for text in (system, user, code or "")):
        return _refused(f"At most {MAX_TEMPLATE_CHARS:,} characters per field.")
    unsaved = ActionTemplate(action=action, language=language, system=system, user=user)
    try:
        unsaved.clean()
    except ValidationError as exc:
        return _refused(" ".join(exc.messages))
    try:
        messages = preview_messages(
            action=action,
            language=language,
            template=Template(system=system, user=user),
            code=code if code and code.strip() else None,
        )
    except ValueError as exc:
        return _refused(str(exc))
    return JsonResponse({"messages": messages})


@require_GET
def shipped(request: HttpRequest) -> HttpResponse:
    """``{"system", "user", "sample": {"language", "filepath", "code"}}``."""
    choice = _choice(request)
    if isinstance(choice, JsonResponse):
        return choice
    action, language = choice
    template = shipped_template(action, LANGUAGES.get(language))
    sample = SAMPLES[language]
    return JsonResponse(
        {
            "system": template.system,
            "user": template.user,
            "sample": {
                "language": sample.language,
                "filepath": sample.filepath,
                "code": sample.code,
            },
        }
    )
