"""The console's pages for the action templates and per-action defaults: an administrator
adds a template from the shipped text, previews and saves it, sees its versions and
reverts; an auditor reads all of it and can change nothing, on any write path."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from accounts.roles import ADMINISTRATORS, AUDITORS
from gateway import selectors, services
from gateway.actions.languages import PYTHON, SAMPLES
from gateway.actions.preview import SAMPLE_INSTRUCTIONS
from gateway.actions.templates import Template, build_messages, shipped_template
from gateway.models import ActionSetting, ActionTemplate, UpstreamServer

pytestmark = [pytest.mark.smoke, pytest.mark.django_db, pytest.mark.usefixtures("fresh_stamps")]

PASSWORD = "a-long-console-password-7"
EDITED_SYSTEM = "You fix {language} code for the console test. One fenced block first."
USER = "{filepath_line}{ticks}{fence}\n{code}\n{ticks}{instructions_block}"
LIST = reverse("admin:gateway_actiontemplate_changelist")
ADD = reverse("admin:gateway_actiontemplate_add")
PREVIEW = reverse("admin:gateway_actiontemplate_preview")
SHIPPED = reverse("admin:gateway_actiontemplate_shipped")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def console(username: str, group: str) -> Client:
    account = get_user_model().objects.create_user(username, password=PASSWORD, is_staff=True)
    account.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(account)
    return client


@pytest.fixture
def admin_console() -> Client:
    return console("alice", ADMINISTRATORS)  # the role's permissions, not a superuser


@pytest.fixture
def auditor_console() -> Client:
    return console("audrey", AUDITORS)


@pytest.fixture
def template() -> ActionTemplate:
    return services.save_action_template(
        template=ActionTemplate(action="fix", language="python", system=EDITED_SYSTEM, user=USER)
    )


def change_url(template: ActionTemplate) -> str:
    return reverse("admin:gateway_actiontemplate_change", args=[template.pk])


def history_url(template: ActionTemplate) -> str:
    return reverse("admin:gateway_actiontemplate_history", args=[template.pk])


def revert_url(version: Any) -> str:
    return reverse(
        "admin:gateway_actiontemplate_simple_history", args=[version.id, version.history_id]
    )


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def notes(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# -- administrators ------------------------------------------------------------------------


def test_the_list_shows_which_template_applies_per_action_and_language(
    admin_console: Client, template: ActionTemplate
) -> None:
    response = admin_console.get(LIST)

    grid = response.context["template_grid"]
    fix = next(row for row in grid["rows"] if row["action"] == "fix")
    assert grid["languages"][:2] == ["generic (any other language)", "Python"]
    assert fix["cells"][1] == {"state": "console", "url": change_url(template)}
    assert fix["cells"][0] == {"state": "shipped", "url": ADD + "?action=fix&language="}
    html = response.content.decode()
    assert 'id="template-grid"' in html and "fix (Python)" in html
    assert "Revert selected templates to the shipped text" in html


def test_a_new_template_starts_from_the_shipped_text(admin_console: Client) -> None:
    response = admin_console.get(ADD + "?action=tests&language=python")

    assert response.status_code == 200
    initial = response.context["adminform"].form.initial
    shipped = shipped_template("tests", PYTHON)
    assert (initial["action"], initial["language"]) == ("tests", "python")
    assert (initial["system"], initial["user"]) == (shipped.system, shipped.user)
    html = response.content.decode()
    assert 'id="template-preview-panel"' in html and 'id="preview-button"' in html
    assert "def mean(values: list[float]) -&gt; float:" in html  # the Python sample
    assert "{instructions_block}" in html  # the placeholders are listed


def test_an_administrator_adds_and_changes_a_template(admin_console: Client) -> None:
    form = {"action": "fix", "language": "python", "system": EDITED_SYSTEM, "user": USER}
    added = admin_console.post(ADD, form)

    assert added.status_code == 302, added.content.decode()
    saved = ActionTemplate.objects.get()
    assert saved.changed_by is not None and saved.changed_by.username == "alice"
    assert saved.history.get().history_user.username == "alice"
    assert selectors.config_version() == ""  # bumped only once the transaction commits

    again = admin_console.post(ADD, form)
    assert again.status_code == 200 and "already exists" in again.content.decode()

    broken = admin_console.post(change_url(saved), {"system": "Fix { it", "user": USER})
    assert broken.status_code == 200
    assert "The system prompt has a single { or }" in broken.content.decode()

    changed = admin_console.post(
        change_url(saved), {"system": EDITED_SYSTEM + " Be brief.", "user": USER}
    )
    assert changed.status_code == 302
    assert ActionTemplate.objects.get().system.endswith("Be brief.")
    assert ActionTemplate.history.filter(id=saved.pk).count() == 2


def test_the_preview_shows_the_exact_messages_of_the_unsaved_text(
    admin_console: Client, template: ActionTemplate
) -> None:
    edited = "Unsaved: fix {language} code."
    form = {"action": "fix", "language": "python", "system": edited, "user": USER}

    sample = admin_console.post(PREVIEW, {**form, "code": ""})
    own = admin_console.post(PREVIEW, {**form, "code": "print(1 / 0)"})

    assert sample.status_code == 200
    python = SAMPLES["python"]
    assert sample.json()["messages"] == build_messages(
        "fix",
        code=python.code,
        language="python",
        filepath=python.filepath,
        instructions=SAMPLE_INSTRUCTIONS,
        template=Template(system=edited, user=USER),
    )
    assert sample.json()["messages"][0]["content"] == "Unsaved: fix Python code."
    assert "print(1 / 0)" in own.json()["messages"][1]["content"]
    assert ActionTemplate.objects.get().system == EDITED_SYSTEM  # nothing saved

    broken = admin_console.post(PREVIEW, {**form, "system": "Fix {nope}"})
    assert broken.status_code == 400
    assert "The system prompt uses {nope}, which is not a placeholder" in broken.json()["error"]
    unknown = admin_console.post(PREVIEW, {**form, "action": "poem"})
    assert unknown.status_code == 400 and "docs, fix, tests, explain" in unknown.json()["error"]
    assert admin_console.get(PREVIEW).status_code == 405


def test_the_shipped_text_and_sample_of_an_action_and_language(admin_console: Client) -> None:
    answer = admin_console.get(SHIPPED, {"action": "docs", "language": ""})

    assert answer.status_code == 200
    generic = shipped_template("docs", None)
    assert (answer.json()["system"], answer.json()["user"]) == (generic.system, generic.user)
    assert answer.json()["sample"]["language"] == "rust"
    assert admin_console.get(SHIPPED, {"action": "docs", "language": "cobol"}).status_code == 400


def test_the_history_shows_each_version_and_reverts_to_one(
    admin_console: Client, template: ActionTemplate, committed: Any
) -> None:
    admin_console.post(change_url(template), {"system": "Second {language}.", "user": USER})
    first = ActionTemplate.history.filter(id=template.pk).earliest()

    history = page(admin_console, history_url(template))
    assert "Second {language}." in history and EDITED_SYSTEM in history  # the change shown
    assert "alice" in history
    assert revert_url(first) in history
    revert_page = admin_console.get(revert_url(first))
    assert revert_page.status_code == 200 and not revert_page.context["revert_disabled"]
    assert EDITED_SYSTEM in revert_page.content.decode()

    with committed():
        reverted = admin_console.post(revert_url(first), {"system": first.system, "user": USER})

    assert reverted.status_code == 302
    assert ActionTemplate.objects.get().system == EDITED_SYSTEM
    latest = ActionTemplate.history.filter(id=template.pk).latest()
    assert latest.history_change_reason.startswith("reverted to the version of ")
    assert latest.history_user.username == "alice"
    assert selectors.config_version()  # every worker reloads


def test_revert_to_shipped_removes_the_template_and_keeps_its_versions(
    admin_console: Client, template: ActionTemplate
) -> None:
    response = admin_console.post(
        LIST, {"action": "revert_to_shipped", "_selected_action": [template.pk]}
    )

    assert response.status_code == 302
    assert not ActionTemplate.objects.exists()
    assert "1 template(s) back to the shipped text: fix (Python)." in notes(response)[0]
    gone = ActionTemplate.history.filter(id=template.pk).latest()
    assert (gone.history_type, gone.history_user.username) == ("-", "alice")


def test_an_administrator_sets_an_actions_defaults(admin_console: Client) -> None:
    services.save_upstream(
        upstream=UpstreamServer(url="http://upstream-a:8000", models=[{"id": "coder-7b"}])
    )
    add = reverse("admin:gateway_actionsetting_add")
    form = {"action": "explain", "model": "nope", "temperature": "0.2", "max_tokens": "400"}

    refused = admin_console.post(add, form)
    assert refused.status_code == 200
    assert "No model server serves &#x27;nope&#x27;" in refused.content.decode()

    added = admin_console.post(add, {**form, "model": "coder-7b"})
    assert added.status_code == 302
    setting = ActionSetting.objects.get()
    assert (setting.model, setting.temperature, setting.max_tokens) == ("coder-7b", 0.2, 400)
    assert setting.history.get().history_user.username == "alice"
    history = reverse("admin:gateway_actionsetting_history", args=[setting.pk])
    assert "alice" in page(admin_console, history)


# -- auditors ------------------------------------------------------------------------------


def test_an_auditor_reads_templates_defaults_and_versions(
    auditor_console: Client, template: ActionTemplate
) -> None:
    setting = services.save_action_setting(setting=ActionSetting(action="fix", temperature=0.1))

    listing = page(auditor_console, LIST)
    assert "fix (Python)" in listing and "template-grid" in listing
    assert 'href="' + ADD not in listing  # nothing to add from
    detail = auditor_console.get(change_url(template))
    assert detail.status_code == 200 and EDITED_SYSTEM in detail.content.decode()
    assert not detail.context["can_preview"]
    assert 'name="system"' not in detail.content.decode()  # shown, not editable
    assert 'id="template-preview-panel"' not in detail.content.decode()
    history = auditor_console.get(history_url(template))
    assert history.status_code == 200 and history.context["revert_disabled"]
    assert "View history" in history.content.decode()
    version = ActionTemplate.history.filter(id=template.pk).earliest()
    revert_page = auditor_console.get(revert_url(version))
    assert revert_page.status_code == 200 and revert_page.context["revert_disabled"]
    page(auditor_console, reverse("admin:gateway_actionsetting_change", args=[setting.pk]))
    page(auditor_console, reverse("admin:gateway_actionsetting_history", args=[setting.pk]))


def test_an_auditor_changes_nothing_on_any_write_path(
    auditor_console: Client, template: ActionTemplate
) -> None:
    form = {"system": "Auditor {language}.", "user": USER}
    version = ActionTemplate.history.filter(id=template.pk).earliest()
    setting = services.save_action_setting(setting=ActionSetting(action="fix", temperature=0.1))
    delete = reverse("admin:gateway_actiontemplate_delete", args=[template.pk])
    refused = [
        auditor_console.get(ADD),
        auditor_console.post(ADD, {"action": "docs", "language": "", **form}),
        auditor_console.post(change_url(template), form),
        auditor_console.post(revert_url(version), form),  # the History page's revert form
        auditor_console.post(LIST, {"action": "revert_to_shipped", "_selected_action": [1]}),
        auditor_console.post(delete, {"post": "yes"}),
        auditor_console.post(
            reverse("admin:gateway_actionsetting_change", args=[setting.pk]),
            {"temperature": "1.5"},
        ),
    ]

    assert [response.status_code for response in refused] == [403] * len(refused)
    assert ActionTemplate.objects.get().system == EDITED_SYSTEM
    assert ActionSetting.objects.get().temperature == 0.1
