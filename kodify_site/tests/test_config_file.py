"""config.yml, read directly (gateway/config_file.py): the guide's format and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config_file import (
    ConfigError,
    UpstreamSpec,
    find_config_file,
    load_config,
    normalise_upstream_url,
)

pytestmark = pytest.mark.smoke

GUIDE_EXAMPLE = """\
upstreams:
  http://upstream1:8000:
  http://upstream2:8000:
tabby:
  model_name: tabby_model_name
"""


def write(folder: Path, text: str, name: str = "config.yml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(folder: Path, text: str, extra_urls: tuple[str, ...] = ()) -> object:
    return load_config(write(folder, text), (), extra_urls)


def test_guide_format_with_empty_values(tmp_path: Path) -> None:
    path = write(tmp_path, GUIDE_EXAMPLE)
    config = load_config(path, ())
    assert config.path == path
    assert config.upstreams == (
        UpstreamSpec(url="http://upstream1:8000", source=str(path)),
        UpstreamSpec(url="http://upstream2:8000", source=str(path)),
    )
    assert config.tabby_model_name == "tabby_model_name"


def test_upstream_options(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "upstreams:\n"
            "  http://a:8000:\n"
            "    api_key: secret\n"
            "    weight: 2\n"
            "  https://b:8443:\n"
            "    api_key: 12345\n"  # YAML reads an int; a key is still a string
            "    weight: 0.5\n"
            "    enabled: false\n"
            "    name: backup\n",
        ),
        (),
    )
    first, second = config.upstreams
    assert (first.url, first.api_key, first.weight, first.enabled) == (
        "http://a:8000",
        "secret",
        2.0,
        True,
    )
    assert (second.url, second.api_key, second.weight, second.enabled, second.name) == (
        "https://b:8443",
        "12345",
        0.5,
        False,
        "backup",
    )


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ("    weight: 0\n", ": weight must be a positive number."),
        ("    weight: -1\n", ": weight must be a positive number."),
        ("    weight: heavy\n", ": weight must be a positive number."),
        ("    weight: true\n", ": weight must be a positive number."),
        ("    enabled: maybe\n", ": enabled must be true or false."),
        ("    api_key: [a, b]\n", ": api_key must be a string."),
        (
            "    priority_scheduling: 1\n",
            ": priority_scheduling must be true (its vLLM runs with --scheduling-policy "
            "priority) or false.",
        ),
        (
            "    priority_scheduling: fcfs\n",
            ": priority_scheduling must be true (its vLLM runs with --scheduling-policy "
            "priority) or false.",
        ),
        (
            "    wieght: 2\n",
            ' has unknown option "wieght" (expected: api_key, weight, enabled, name, '
            'preprocessing, max_concurrent, priority_scheduling); did you mean "weight"?',
        ),
    ],
)
def test_bad_upstream_options_are_refused(tmp_path: Path, options: str, reason: str) -> None:
    # The bad option is on line 4, under the URL's line 3.
    path = write(tmp_path, "upstreams:\n  http://a:8000:\n    name: a\n" + options)
    with pytest.raises(ConfigError) as error:
        load_config(path, ())
    assert str(error.value) == f"{path} line 4: upstream http://a:8000{reason}"


def test_priority_scheduling_is_off_unless_the_file_turns_it_on(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "upstreams:\n"
            "  http://a:8000:\n"
            "    priority_scheduling: true\n"
            "  http://b:8000:\n"
            "    priority_scheduling: false\n"
            "  http://c:8000:\n",
        ),
        (),
    )
    assert [spec.priority_scheduling for spec in config.upstreams] == [True, False, False]


def test_options_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 2: the options of upstream http://a:8000 must be"):
        load_text(tmp_path, "upstreams:\n  http://a:8000: secret\n")


@pytest.mark.parametrize(
    ("written", "url"),
    [
        ("http://a:8000/v1", "http://a:8000"),
        ("http://a:8000/v1/", "http://a:8000"),
        ("http://a:8000/", "http://a:8000"),
        ("https://a.example/vllm/v1", "https://a.example/vllm"),
        ("http://a:8000/v10", "http://a:8000/v10"),
    ],
)
def test_v1_suffix_is_stripped(tmp_path: Path, written: str, url: str) -> None:
    assert normalise_upstream_url(written) == url
    config = load_config(write(tmp_path, f"upstreams:\n  {written}:\n"), ())
    assert [spec.url for spec in config.upstreams] == [url]


def test_duplicates_are_refused(tmp_path: Path) -> None:
    # The same server, once with the /v1 the OpenAI clients use and once without.
    path = write(tmp_path, "upstreams:\n  http://a:8000:\n  http://a:8000/v1:\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, ())
    assert str(error.value) == (
        f"{path} line 3: upstream http://a:8000 is listed twice (first at {path} line 2)."
    )


def test_duplicates_between_the_file_and_kodify_upstreams_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "upstreams:\n  http://a:8000:\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, (), ["http://a:8000/v1/"])
    assert str(error.value) == (
        f"KODIFY_UPSTREAMS: upstream http://a:8000 is listed twice (first at {path} line 2)."
    )


def test_kodify_upstreams_come_after_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GUIDE_EXAMPLE), (), ["http://extra:8000"])
    assert [spec.url for spec in config.upstreams] == [
        "http://upstream1:8000",
        "http://upstream2:8000",
        "http://extra:8000",
    ]
    assert config.upstreams[-1].source == "KODIFY_UPSTREAMS"


def test_kodify_upstreams_alone_without_any_file() -> None:
    config = load_config(None, (), ["http://extra:8000"])
    assert config.path is None
    assert [spec.url for spec in config.upstreams] == ["http://extra:8000"]


def test_a_plain_list_of_urls_is_accepted(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "upstreams:\n  - http://a:8000\n  - http://b:8000\n"), ())
    assert [spec.url for spec in config.upstreams] == ["http://a:8000", "http://b:8000"]


def test_a_list_of_upstreams_with_their_options_is_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "upstreams:\n"
        "- url: http://a:8000\n"  # a list at the key's own indentation is still under it
        "  name: first\n"
        "  weight: 2\n"
        "- http://b:8000\n"
        "- http://c:8000:\n"
        "    enabled: false\n",
    )
    config = load_config(path, ())
    assert config.upstreams == (
        UpstreamSpec(url="http://a:8000", name="first", weight=2.0, source=str(path)),
        UpstreamSpec(url="http://b:8000", source=str(path)),
        UpstreamSpec(url="http://c:8000", enabled=False, source=str(path)),
    )


def test_an_upstream_in_a_list_needs_its_url(tmp_path: Path) -> None:
    path = write(tmp_path, "upstreams:\n  - url: http://a:8000\n  - name: second\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, ())
    assert str(error.value).startswith(f"{path} line 3: this upstream has no url")


def test_an_unknown_option_of_a_listed_upstream_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "upstreams:\n  - url: http://a:8000\n    api-key: x\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, ())
    assert str(error.value).startswith(
        f'{path} line 3: upstream http://a:8000 has unknown option "api-key"'
    )
    assert 'did you mean "api_key"?' in str(error.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "upstreams:\n  ftp://a:8000:\n",
            " line 2: upstream 'ftp://a:8000': expected a URL starting with http:// or https://",
        ),
        ("upstreams:\n  http://:8000:\n", " line 2: upstream 'http://:8000': the URL has no host"),
        (
            "upstreams: http://a:8000\n",
            " line 1: 'upstreams' must map upstream URLs to their options",
        ),
        ("upstreams:\n  http://a:8000: secret\n", " line 2: the options of upstream"),
        ("- http://a:8000\n", ": must be a mapping with 'upstreams' and 'tabby' keys"),
        (
            "\ntabby: tabby_model_name\n",
            " line 2: 'tabby' must be a mapping such as 'model_name: NAME'",
        ),
        ("tabby:\n  model_name: [a]\n", " line 2: tabby.model_name must be a string"),
        ("upstreams:\n\thttp://a:8000:\n", ": is not valid YAML at line 2"),
        ("upstreams: !!python/name:os.system\n", ": is not valid YAML at line 1"),
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, text: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path, ())
    assert str(error.value).startswith(f"{path}{reason}")


def test_tabby_model_name_is_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "tabby:\n  model_name: qwen-coder\n"), ())
    assert config.tabby_model_name == "qwen-coder"
    assert config.upstreams == ()


def test_empty_tabby_model_name_means_none(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "tabby:\n  model_name:\n"), ())
    assert config.tabby_model_name is None


def test_empty_file_is_an_empty_configuration(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), ())
    assert config.upstreams == ()
    assert config.tabby_model_name is None


def test_empty_sections_are_empty(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "upstreams:\ntabby:\n"), ())
    assert (config.upstreams, config.tabby_model_name) == ((), None)


# -- keys that are unknown or lost their indentation: named with their line ---------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GUIDE_EXAMPLE + "logging:\n  level: debug\n",
            'line 6: unknown key "logging" (expected: upstreams, tabby).',
        ),
        (
            "# Kodify\n\nupstream:\n  http://upstream1:8000:\n",
            'line 3: unknown key "upstream" (expected: upstreams, tabby); did you mean '
            '"upstreams"?',
        ),
        (
            "upstreams:\n  http://upstream1:8000:\ntabbby:\n  model_name: m\n",
            'line 3: unknown key "tabbby" (expected: upstreams, tabby); did you mean "tabby"?',
        ),
        (
            "tabby:\n  model_name: m\n  modelname: n\n",
            'line 3: unknown key "modelname" under tabby (expected: model_name); did you mean '
            '"model_name"?',
        ),
        (
            "upstreams:\n  http://a:8000:\nupstreams:\n  http://b:8000:\n",
            'line 3: "upstreams" is written twice (first at line 1).',
        ),
    ],
)
def test_unknown_keys_are_refused_with_their_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path, ())
    assert str(error.value) == f"{path} {message}"


LOST = "(the indentation may have been lost in copying)."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # The guide's example with every indentation lost.
        (
            "".join(line.lstrip() + "\n" for line in GUIDE_EXAMPLE.splitlines()),
            f'line 2: "http://upstream1:8000" is an upstream, so it belongs under '
            f'"upstreams:": indent it {LOST}',
        ),
        (
            "upstreams:\n- name: first\nurl: http://a:8000\n",
            f'line 3: "url" is an option of an upstream, so it belongs under its upstream: '
            f"indent it {LOST}",
        ),
        (
            "upstreams:\n  http://a:8000:\ntabby:\nmodel_name: m\n",
            f'line 4: "model_name" belongs under "tabby:": indent it {LOST}',
        ),
        (
            "upstreams:\n  http://a:8000:\n  weight: 2\n",
            f'line 3: "weight" is an option of an upstream, not an upstream\'s URL: indent it '
            f"under its upstream {LOST}",
        ),
    ],
)
def test_keys_that_lost_their_indentation_are_refused_with_their_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path, ())
    assert str(error.value) == f"{path} {message}"


def test_merged_keys_are_read_as_yaml_reads_them(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "upstreams:\n"
            "  http://a:8000: &shared\n"
            "    weight: 2\n"
            "    name: a\n"
            "  http://b:8000:\n"
            "    <<: *shared\n"
            "    name: b\n",  # the file's own key wins over the merged one
        ),
        (),
    )
    assert [(spec.weight, spec.name) for spec in config.upstreams] == [(2.0, "a"), (2.0, "b")]


# -- where the file is found -------------------------------------------------------------


def test_kodify_config_comes_before_the_search_path(tmp_path: Path) -> None:
    explicit = write(tmp_path, "tabby:\n  model_name: explicit\n", "explicit.yml")
    first = write(tmp_path, "tabby:\n  model_name: first\n", "first.yml")
    assert find_config_file(explicit, [first]) == explicit
    assert load_config(explicit, [first]).tabby_model_name == "explicit"


def test_missing_kodify_config_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    first = write(tmp_path, GUIDE_EXAMPLE, "first.yml")
    missing = tmp_path / "missing.yml"
    with pytest.raises(ConfigError) as error:
        load_config(missing, [first])
    assert str(error.value) == f"KODIFY_CONFIG={missing}: no such file."


def test_kodify_config_must_be_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        find_config_file(tmp_path, [])


def test_search_path_takes_the_first_existing_file(tmp_path: Path) -> None:
    absent = tmp_path / "absent" / "config.yml"
    second = write(tmp_path, "tabby:\n  model_name: second\n", "second.yml")
    third = write(tmp_path, "tabby:\n  model_name: third\n", "third.yml")
    # A folder named config.yml is not a configuration file.
    folder = tmp_path / "folder.yml"
    folder.mkdir()
    assert find_config_file(None, [absent, folder, second, third]) == second
    config = load_config(None, [absent, folder, second, third])
    assert config.path == second
    assert config.tabby_model_name == "second"


def test_no_file_anywhere_is_an_empty_configuration(tmp_path: Path) -> None:
    config = load_config(None, [tmp_path / "a.yml", tmp_path / "b.yml"])
    assert config.path is None
    assert config.upstreams == ()


def test_settings_search_path_follows_the_guide() -> None:
    from django.conf import settings

    cwd, workspace, opt = settings.KODIFY_CONFIG_SEARCH_PATH
    assert cwd == Path.cwd() / "config.yml"
    assert workspace == Path("/vllm-workspace/config.yml")
    assert opt == Path("/opt/mtsai/config.yml")
