"""``bench.request_parsing`` runs, and times bodies that every way takes as valid."""

from __future__ import annotations

from bench import request_parsing


def test_every_way_takes_the_bodies_and_the_table_shows_them() -> None:
    results = request_parsing.measure(rounds=2, round_us=20, baseline=None)
    # pydantic comes with the dev dependencies (openai's), not with Kodify's.
    assert [way for way in results if way != "pydantic"] == [
        "orjson",
        "now",
        "msgspec",
        "jsonschema",
    ]
    for row in results.values():
        assert set(row) == {"chat", "completion", "tabby"}
        assert all(value > 0 for value in row.values())
    table = request_parsing.table(results)
    assert all(f"{name} (" in table.splitlines()[0] for name in ("chat", "completion", "tabby"))
    assert all(f"\n{way} " in table for way in results)


def test_the_bodies_are_what_the_docstring_says() -> None:
    chat, completion, tabby = request_parsing.bodies()
    assert len(request_parsing.orjson.loads(chat.raw)["messages"]) == 6
    assert len(tabby.raw) > 20_000
    for body in (chat, completion, tabby):
        request_parsing.gateway_way(body)(body.raw)  # the gateway takes them


def test_a_typed_revision_has_no_hand_written_row() -> None:
    # The working tree's modules are typed: read as a "revision", they give no row.
    assert request_parsing.hand_written_way("no-such-revision") is None
    assert request_parsing.baseline_revision()  # HEAD, or the commit before the typing
