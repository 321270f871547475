"""Preprocessing configs: the shipped ones, the checks on bad ones, which one a model gets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from django.test import override_settings

from gateway.checks import upstream_configuration
from gateway.fim import profiles
from gateway.fim.profiles import (
    SCHEMA_FILE,
    SHIPPED_DIR,
    ProfileError,
    build_profile_set,
    load_profile,
    load_shipped,
)

pytestmark = pytest.mark.smoke

FAMILIES = {
    "qwen": "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>",
    "deepseek": "<｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>",  # noqa: RUF001 - DeepSeek's tokens use U+FF5C
    "codellama": "<PRE> {prefix} <SUF>{suffix} <MID>",
    "starcoder2": "<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>",
    "codestral": "[SUFFIX]{suffix}[PREFIX]{prefix}",
}


@pytest.fixture(autouse=True)
def fresh_profiles() -> Iterator[None]:
    profiles.get_profiles.cache_clear()
    yield
    profiles.get_profiles.cache_clear()


def test_every_shipped_config_follows_the_schema_and_has_the_families_template() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    shipped = load_shipped()
    for path in SHIPPED_DIR.glob("*.json"):
        if path != SCHEMA_FILE:
            jsonschema.validate(json.loads(path.read_text()), schema)
    for name, template in FAMILIES.items():
        profile = shipped[name]
        assert profile.template == template
        assert profile.max_tokens == 64 and profile.temperature == 0.1
        assert profile.stop and not profile.upstream_accepts_suffix
    assert shipped["generic"].template == "{prefix}"


def write(tmp_path: Path, data: Any, name: str = "custom.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "is not valid JSON (line 1"),
        ({"name": "x"}, "'template' is a required property"),
        ({"name": "x", "template": "<fim>{suffix}"}, "template: '<fim>{suffix}' does not match"),
        ({"name": "x", "template": "{prefix}", "max_tokens": "64"}, "max_tokens: '64' is not"),
        ({"name": "x", "template": "{prefix}", "temprature": 0.2}, "'temprature' was unexpected"),
        ({"name": "x", "template": "{prefix}{prefix}"}, "{prefix} may appear only once"),
        (
            {"name": "x", "template": "{prefix}", "context": {"style": "template"}},
            "'snippet_template' is a required property",
        ),
    ],
)
def test_a_bad_config_is_refused_with_the_file_and_the_field(
    tmp_path: Path, data: Any, message: str
) -> None:
    path = write(tmp_path, data)
    with pytest.raises(ProfileError) as refused:
        load_profile(path)
    assert str(refused.value).startswith(str(path))
    assert message in str(refused.value)


def test_the_choice_order_upstream_then_setting_then_model_name_then_generic(
    tmp_path: Path,
) -> None:
    custom = write(tmp_path, {"name": "house", "template": "<X>{prefix}<Y>{suffix}<Z>"})
    plain = build_profile_set(None, {})
    assert plain.for_model("Qwen/Qwen2.5-Coder-7B-Instruct").name == "qwen"
    assert plain.for_model("tiny", root="/models/deepseek-coder-6.7b-base").name == "deepseek"
    assert plain.for_model("bigcode/starcoder2-15b").name == "starcoder2"
    assert plain.for_model("mistralai/Codestral-22B-v0.1").name == "codestral"
    assert plain.for_model("CodeLlama-13b-hf").name == "codellama"
    assert plain.for_model("gpt-oss-20b").name == "generic"

    chosen = build_profile_set(str(custom), {"http://b:8000": "starcoder2"})
    assert chosen.for_model("qwen2.5-coder").name == "house"  # the setting beats the name
    # What the gateway passes: the upstream's own preprocessing, then the model's.
    assert chosen.for_model("qwen2.5-coder", choices=("starcoder2", "")).name == "starcoder2"
    assert chosen.for_model("qwen2.5-coder", choices=("", "")).name == "house"


def test_the_guides_relative_path_is_taken_from_the_project_directory() -> None:
    chosen = build_profile_set("preprocess_configs/qwen.json", {})
    assert chosen.explicit is not None and chosen.explicit.name == "qwen"
    assert build_profile_set("deepseek", {}).explicit is not None  # a name works too


def test_the_start_up_check_names_a_missing_or_broken_config(tmp_path: Path) -> None:
    with override_settings(COMPLETIONS_PREPROCESSING_CONFIG="preprocess_configs/nope.json"):
        errors = upstream_configuration()
    assert [error.id for error in errors] == ["kodify.E102"]
    assert "nope.json: cannot be read" in errors[0].msg

    broken = write(tmp_path, {"name": "x", "template": "no placeholders"})
    profiles.get_profiles.cache_clear()
    with override_settings(COMPLETIONS_PREPROCESSING_CONFIG=str(broken)):
        errors = upstream_configuration()
    assert [error.id for error in errors] == ["kodify.E102"]
    assert "template" in errors[0].msg


def test_console_choices_come_first_and_an_unusable_one_falls_back() -> None:
    chosen = build_profile_set("codestral", {})
    assert chosen.for_model("qwen-coder", choices=("", "deepseek")).name == "deepseek"
    assert chosen.for_model("qwen-coder", choices=("starcoder2", "deepseek")).name == "starcoder2"
    assert chosen.for_model("qwen-coder", choices=("/gone/config.json",)).name == "codestral"
    assert chosen.loaded["/gone/config.json"] is None  # read once, not at every request
