"""Client names from user agents: the many spellings of one client become one name."""

from __future__ import annotations

import pytest

from journal.clients import NAME_MAX, VERSION_MAX, parse_user_agent


@pytest.mark.parametrize(
    ("user_agent", "name", "version"),
    [
        # what tabby-agent sends: runtime, agent, IDE (spaces made dashes), IDE plugin
        ("Node.js/v20.11.0 tabby-agent/1.7.0 Visual-Studio-Code/1.90.0 "
         "TabbyML.vscode-tabby/1.7.0", "tabby-agent (VS Code)", "1.7.0"),
        ("Node.js/v18.19.0 tabby-agent/1.6.2 IntelliJ-IDEA/2024.1.4 intellij-tabby/1.6.2",
         "tabby-agent (IntelliJ IDEA)", "1.6.2"),
        ("Node.js/v20.11.0 tabby-agent/1.7.0 Neovim/0.10.0", "tabby-agent (Neovim)", "1.7.0"),
        ("OpenAI/Python 1.54.0", "OpenAI Python", "1.54.0"),
        ("AsyncOpenAI/Python 1.54.0", "OpenAI Python", "1.54.0"),
        ("OpenAI/JS 4.73.1", "OpenAI JS", "4.73.1"),
        ("Continue/0.9.200 (vscode)", "Continue", "0.9.200"),
        ("Kodify-JetBrains/1.2 (PyCharm 2024.1)", "Kodify JetBrains (PyCharm)", "1.2"),
        ("Kodify-VSCode/0.3.1 VSCode/1.90.0", "Kodify VS Code", "0.3.1"),
        ("Zed/0.160.1 (macos; aarch64)", "Zed", "0.160.1"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Cursor/0.42.3 Chrome/124.0.6367.243 Electron/30.4.0 Safari/537.36",
         "Cursor", "0.42.3"),
        ("curl/8.5.0", "curl", "8.5.0"),
        ("curl/8.5.0 (code review bot)", "curl", "8.5.0"),
        ("python-httpx/0.28.1", "python-httpx", "0.28.1"),
        ("python-requests/2.32.3", "python-requests", "2.32.3"),
        ("Python/3.11 aiohttp/3.9.5", "aiohttp", "3.9.5"),
        ("Go-http-client/1.1", "Go-http-client", "1.1"),
        ("okhttp/4.12.0", "okhttp", "4.12.0"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91", "Edge", "120.0.2210.91"),
        ("MyInternalTool/2.0 Python/3.11", "MyInternalTool", "2.0"),
        ("", "", ""),
        ("   ", "", ""),
    ],
)  # fmt: skip
def test_known_clients_get_one_readable_name(user_agent: str, name: str, version: str) -> None:
    assert parse_user_agent(user_agent) == (name, version)


def test_names_and_versions_fit_their_columns() -> None:
    name, version = parse_user_agent(f"{'A' * 200}/{'9' * 200}")
    assert (len(name), len(version)) == (NAME_MAX, VERSION_MAX)


def test_repeated_user_agents_are_parsed_once() -> None:
    parse_user_agent.cache_clear()
    for _ in range(3):
        parse_user_agent("curl/8.5.0")
    info = parse_user_agent.cache_info()
    assert (info.misses, info.hits) == (1, 2)
