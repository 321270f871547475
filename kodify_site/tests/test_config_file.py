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
    assert config.extra == {}


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
        ("    weight: 0\n", "weight must be a positive number"),
        ("    weight: -1\n", "weight must be a positive number"),
        ("    weight: heavy\n", "weight must be a positive number"),
        ("    weight: true\n", "weight must be a positive number"),
        ("    enabled: maybe\n", "enabled must be true or false"),
        ("    api_key: [a, b]\n", "api_key must be a string"),
        ("    wieght: 2\n", "unknown option(s) wieght; known: api_key, weight"),
    ],
)
def test_bad_upstream_options_are_refused(tmp_path: Path, options: str, reason: str) -> None:
    path = write(tmp_path, "upstreams:\n  http://a:8000:\n" + options)
    with pytest.raises(ConfigError) as error:
        load_config(path, ())
    message = str(error.value)
    assert message.startswith(f"{path}: upstream http://a:8000")
    assert reason in message


def test_options_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the options of upstream http://a:8000 must be a"):
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
    assert str(error.value) == f"{path}: upstream http://a:8000 is listed twice."


def test_duplicates_between_the_file_and_kodify_upstreams_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "upstreams:\n  http://a:8000:\n")
    with pytest.raises(ConfigError, match="upstream http://a:8000 is listed twice"):
        load_config(path, (), ["http://a:8000/v1/"])


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


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("upstreams:\n  ftp://a:8000:\n", "expected a URL starting with http:// or https://"),
        ("upstreams:\n  http://:8000:\n", "the URL has no host"),
        ("upstreams: http://a:8000\n", "'upstreams' must map upstream URLs to their options"),
        ("- http://a:8000\n", "must be a mapping with 'upstreams' and 'tabby' keys"),
        ("tabby: tabby_model_name\n", "'tabby' must be a mapping such as 'model_name: NAME'"),
        ("tabby:\n  model_name: [a]\n", "tabby.model_name must be a string"),
        ("upstreams:\n\thttp://a:8000:\n", "is not valid YAML at line 2"),
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, text: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path, ())
    assert str(error.value).startswith(f"{path}: ")
    assert reason in str(error.value)


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


def test_unknown_top_level_keys_are_kept_aside(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GUIDE_EXAMPLE + "logging:\n  level: debug\n"), ())
    assert config.extra == {"logging": {"level": "debug"}}


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
