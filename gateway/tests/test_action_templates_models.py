"""The console's action templates and per-action defaults: what a save accepts (a stray
brace is a sentence naming the field and the placeholders), their versions and reverts,
the configuration stamp every write bumps, and what the workers' snapshot carries."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ValidationError

from accounts.models import AuditEvent
from gateway import selectors, services
from gateway.actions.languages import SAMPLES
from gateway.actions.overrides import ActionDefaults
from gateway.actions.preview import SAMPLE_INSTRUCTIONS, preview_messages
from gateway.actions.templates import PLACEHOLDER_LIST, Template, build_messages
from gateway.models import ActionSetting, ActionTemplate
from gateway.snapshot import CONFIG_VERSION_KEY

pytestmark = [pytest.mark.smoke, pytest.mark.django_db, pytest.mark.usefixtures("fresh_stamps")]

SYSTEM = "You fix {language} code. Answer with the fixed code in one block."
USER = "Fix this:\n\n{ticks}{fence}\n{code}\n{ticks}{instructions_block}"


def python_fix(**fields: Any) -> ActionTemplate:
    return ActionTemplate(
        **{"action": "fix", "language": "python", "system": SYSTEM, "user": USER, **fields}
    )


# -- what a save accepts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "text", "says"),
    [
        ("system", "Fix { the code", "The system prompt has a single { or }"),
        ("system", "Fix the code }", "The system prompt has a single { or }"),
        ("user", "Fix {code", "The user message has a single { or }"),
        ("system", "Fix {nope}.", "The system prompt uses {nope}, which is not a placeholder"),
        ("user", "{code.upper}", "The user message uses {code.upper}, which is not"),
        ("system", "Fix {0}.", "The system prompt uses {0}, which is not a placeholder"),
        ("user", "{code!r}", "writes {code} with a conversion or format spec"),
        ("user", "{code:>80}", "writes {code} with a conversion or format spec"),
    ],
)
def test_a_template_that_does_not_format_is_refused_with_a_sentence(
    field: str, text: str, says: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        services.save_action_template(template=python_fix(**{field: text}))

    [message] = refused.value.message_dict[field]
    assert says in message
    assert f"It may use only the placeholders {PLACEHOLDER_LIST}." in message
    assert not ActionTemplate.objects.exists()


def test_a_direct_save_is_checked_too() -> None:
    with pytest.raises(ValidationError, match="single"):
        python_fix(system="{").save()
    assert not ActionTemplate.objects.exists()


def test_the_code_must_reach_the_model() -> None:
    with pytest.raises(ValidationError) as refused:
        services.save_action_template(template=python_fix(user="Fix it.{instructions_block}"))
    assert "would never see the code" in refused.value.message_dict["user"][0]


def test_literal_braces_and_every_placeholder_are_accepted() -> None:
    everything = " ".join(PLACEHOLDER_LIST.split(", "))
    saved = services.save_action_template(
        template=python_fix(system="Keep {{ and }} as they are. {language}", user=everything)
    )
    assert ActionTemplate.objects.get(pk=saved.pk).user == everything


def test_one_template_per_action_and_language_and_only_known_languages() -> None:
    services.save_action_template(template=python_fix())
    with pytest.raises(ValidationError, match="already exists"):
        services.save_action_template(template=python_fix())
    with pytest.raises(ValidationError) as refused:
        services.save_action_template(template=python_fix(language="rust"))
    assert "language" in refused.value.message_dict
    generic = services.save_action_template(template=python_fix(language=""))
    assert str(generic) == "fix (generic)"


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"temperature": 2.5}, "temperature"), ({"max_tokens": 0}, "max_tokens")],
)
def test_action_defaults_are_checked(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        services.save_action_setting(setting=ActionSetting(action="fix", **fields))
    assert field in refused.value.message_dict


# -- versions, reverts and the stamp -----------------------------------------------------


def test_every_save_is_a_version_with_who_and_why_and_an_earlier_one_comes_back() -> None:
    olga = get_user_model().objects.create_user("olga", is_staff=True)
    first = services.save_action_template(template=python_fix(system="First {language}."))
    first.system = "Second {language}."
    services.save_action_template(template=first, actor=olga)

    versions = list(ActionTemplate.history.filter(id=first.pk).order_by("history_id"))
    assert [(v.history_type, v.system) for v in versions] == [
        ("+", "First {language}."),
        ("~", "Second {language}."),
    ]
    assert [v.history_user for v in versions] == [None, olga]  # the first from a shell

    reverted = services.revert_action_template(version=versions[0], actor=olga)
    assert ActionTemplate.objects.get().system == "First {language}."
    assert reverted.changed_by == olga
    latest = ActionTemplate.history.filter(id=first.pk).latest()
    assert latest.history_change_reason.startswith("reverted to the version of ")
    assert latest.history_user == olga

    services.revert_action_templates_to_shipped(templates=[reverted], actor=olga)
    assert not ActionTemplate.objects.exists()
    gone = ActionTemplate.history.filter(id=first.pk).latest()
    assert (gone.history_type, gone.history_change_reason, gone.history_user) == (
        "-",
        services.REVERTED_TO_SHIPPED,
        olga,
    )

    # Its versions stay: one of them can come back after that too.
    services.revert_action_template(version=versions[1], actor=olga)
    assert ActionTemplate.objects.get().system == "Second {language}."
    assert list(
        AuditEvent.objects.filter(target_type="ActionTemplate")
        .order_by("at", "id")
        .values_list("action", flat=True)
    ) == [
        "action_template.created",
        "action_template.changed",
        "action_template.changed",
        "action_template.shipped.deleted",
        "action_template.created",
    ]


def test_every_write_bumps_the_configuration_stamp(committed: Callable[[], Any]) -> None:
    stamps: list[Any] = []

    def after(write: Callable[[], Any]) -> None:
        with committed():
            write()
        stamps.append(cache.get(CONFIG_VERSION_KEY))

    after(lambda: services.save_action_template(template=python_fix()))
    template = ActionTemplate.objects.get()
    template.user = USER + "\n"
    after(lambda: services.save_action_template(template=template))
    first = ActionTemplate.history.earliest()
    after(lambda: services.revert_action_template(version=first))
    after(lambda: services.revert_action_templates_to_shipped(templates=[template]))
    after(lambda: services.save_action_setting(setting=ActionSetting(action="fix", max_tokens=9)))
    after(
        lambda: services.delete_action_settings(action_settings=list(ActionSetting.objects.all()))
    )

    assert None not in stamps
    assert len(set(stamps)) == len(stamps)


# -- what the workers get ----------------------------------------------------------------


def test_the_snapshot_carries_the_console_templates_and_defaults() -> None:
    services.save_action_template(template=python_fix())
    services.save_action_setting(
        setting=ActionSetting(action="fix", temperature=0.2, max_tokens=300)
    )
    services.save_action_setting(setting=ActionSetting(action="explain", model="coder-7b"))

    actions = selectors.gateway_snapshot().actions

    assert dict(actions.templates) == {("fix", "python"): Template(system=SYSTEM, user=USER)}
    assert actions.defaults_for("fix") == ActionDefaults(temperature=0.2, max_tokens=300)
    assert actions.defaults_for("explain") == ActionDefaults(model="coder-7b")
    assert actions.defaults_for("docs") == ActionDefaults()


def test_a_row_broken_past_the_checks_is_left_out_of_the_snapshot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    saved = services.save_action_template(template=python_fix())
    ActionTemplate.objects.filter(pk=saved.pk).update(system="Fix {")  # no checks run

    with caplog.at_level(logging.WARNING, logger="kodify.upstreams"):
        actions = selectors.gateway_snapshot().actions

    assert dict(actions.templates) == {}
    assert "action template fix (Python) is ignored" in caplog.text


def test_an_override_replaces_only_its_own_action_and_language() -> None:
    overrides = {
        ("fix", "python"): Template(system="Fix {language}.", user="{code}"),
        ("fix", ""): Template(system="Generic fix of {language}.", user="{code}"),
    }

    def system(action: str, language: str) -> str:
        messages = build_messages(action, code="x", language=language, overrides=overrides)
        return messages[0]["content"]

    assert system("fix", "python") == "Fix Python."
    assert system("fix", "rust") == "Generic fix of rust."  # any language without its own
    shipped = build_messages("fix", code="x", language="go")
    assert build_messages("fix", code="x", language="go", overrides=overrides) == shipped
    shipped = build_messages("docs", code="x", language="python")
    assert build_messages("docs", code="x", language="python", overrides=overrides) == shipped


def test_defaults_fill_only_what_the_request_leaves_out() -> None:
    defaults = ActionDefaults(model="coder-7b", temperature=0.1, max_tokens=50)

    body: dict[str, Any] = {"temperature": 0.9}
    assert defaults.fill(body, model=True)
    assert body == {"model": "coder-7b", "temperature": 0.9, "max_tokens": 50}

    chat: dict[str, Any] = {"model": "other", "max_completion_tokens": 7}
    assert defaults.fill(chat, model=False)
    assert chat == {"model": "other", "max_completion_tokens": 7, "temperature": 0.1}

    assert not ActionDefaults().fill(body, model=True)


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_the_preview_is_the_sample_request_through_the_template(language: str) -> None:
    template = Template(system="Edited {language}.", user="{filepath_line}{code}")
    sample = SAMPLES[language]

    messages = preview_messages(action="fix", language=language, template=template)

    assert messages == build_messages(
        "fix",
        code=sample.code,
        language=sample.language,
        filepath=sample.filepath,
        instructions=SAMPLE_INSTRUCTIONS,
        template=template,
    )
    assert sample.code.strip() in messages[1]["content"]
    mine = preview_messages(action="fix", language=language, template=template, code="x = 1")
    assert mine[1]["content"].endswith("x = 1")
