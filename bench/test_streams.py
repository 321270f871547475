"""``bench.streams``: its figures, goals and table from hand-made results, and both
measurements end to end against the fake upstream itself (in this process, and once as
the bench starts it, in a process of its own), small enough to take a few seconds."""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import make_mocked_request

from bench import streams
from bench.servers import start_fake_upstream
from bench.targets import Target
from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer

HEADERS = {"Content-Type": "application/json"}


def held(**changes: object) -> streams.OpenStreamsResult:
    figures: dict[str, object] = {
        "requests": 1000, "errors": 0, "chunks": 20, "delay_s": 3.0, "rss_before_mb": 80.4,
        "rss_peak_mb": 121.6, "max_gap_s": 3.04, "worst_lateness_ms": 42.0,
    }  # fmt: skip
    figures.update(changes)
    return streams.OpenStreamsResult(**figures)  # type: ignore[arg-type]


def cut(
    closed_ms: tuple[float, ...] = (1.5, 2.0, 2.5, 3.0), **changes: object
) -> streams.DisconnectResult:
    figures: dict[str, object] = {"times": len(closed_ms), "closed_ms": closed_ms, "not_closed": 0}
    figures.update(changes)
    return streams.DisconnectResult(**figures)  # type: ignore[arg-type]


# -- the pure parts ----------------------------------------------------------------------


def test_the_body_is_the_stream_scenarios_steering_the_fakes_pace() -> None:
    body = orjson.loads(streams.stream_body(20, 3.0))
    assert body["stream"] is True
    assert body["model"] == "fake-model"
    assert body["fake"] == {"chunks": 20, "delay": 3.0}


def test_a_streams_gap_and_lateness_are_against_its_first_chunk() -> None:
    gap, late_ms = streams.stream_timing([10.0, 10.2, 10.5, 10.6], 0.2)
    assert gap == pytest.approx(0.3)
    assert late_ms == pytest.approx(100.0)  # the third: due at 10.4, came at 10.5
    assert streams.stream_timing([5.0], 0.2) == (0.0, 0.0)


def test_the_summary_counts_failures_and_times_their_chunks_too() -> None:
    outcomes = [
        streams.StreamOutcome((1.0, 1.5, 2.0)),
        streams.StreamOutcome((1.1, 2.6), "the stream ended without data: [DONE]"),
        streams.StreamOutcome((), "status 502: bad gateway"),
    ]
    result = streams.summarise_streams(
        outcomes, chunks=3, delay_s=0.5, rss_before_mb=50.0, rss_peak_mb=60.0
    )
    assert (result.requests, result.errors) == (3, 2)
    assert result.error_samples == (
        "the stream ended without data: [DONE]",
        "status 502: bad gateway",
    )
    assert result.max_gap_s == pytest.approx(1.5)
    assert result.worst_lateness_ms == pytest.approx(1000.0)


def test_no_stream_with_a_chunk_leaves_the_timing_unknown() -> None:
    result = streams.summarise_streams(
        [streams.StreamOutcome((), "refused")], chunks=3, delay_s=0.5,
        rss_before_mb=None, rss_peak_mb=None,
    )  # fmt: skip
    assert result.max_gap_s is None and result.worst_lateness_ms is None
    assert streams.chunk_held_back(result)


def test_lateness_allowed_is_half_a_second_or_two_paces() -> None:
    assert streams.lateness_allowed_ms(0.05) == 500
    assert streams.lateness_allowed_ms(3.0) == 6000
    assert not streams.chunk_held_back(held(worst_lateness_ms=5999.0))
    assert streams.chunk_held_back(held(worst_lateness_ms=6001.0))


def test_disconnect_percentiles_are_observed_values() -> None:
    result = cut(tuple(float(v) for v in range(1, 21)))
    assert (result.p50_ms, result.p95_ms, result.max_ms) == (10.0, 19.0, 20.0)
    assert math.isnan(cut(()).max_ms)


def test_every_goal_holds_on_good_figures() -> None:
    found = streams.goals(held(), cut())
    assert [label for label, _, _ in found] == [
        "no errors",
        "peak RSS ≤ 150 MB with 1,000 streams open",
        "no chunk held back",
        "upstream closed ≤ 50 ms after the client left (p95)",
        "upstream closed ≤ 50 ms after the client left (max)",
    ]
    assert all(holds for _, holds, _ in found), found
    texts = {label: text for label, _, text in found}
    assert texts["peak RSS ≤ 150 MB with 1,000 streams open"] == "80 → 122 MB"
    assert texts["no errors"] == "0 of 1,000 streams failed, 0 of 4 cut-off streams failed"


def test_each_goal_misses_on_its_own_figure() -> None:
    found = streams.goals(
        held(errors=3, rss_peak_mb=150.5, worst_lateness_ms=7000.0),
        cut((1.0,) * 19 + (60.0,)),
    )
    # errors, RSS, lateness; then the disconnects' p95 holds and their max does not
    assert [ok for _, ok, _ in found] == [False, False, False, True, False]


def test_a_stream_never_seen_closed_misses_the_disconnect_goals() -> None:
    found = streams.goals(None, cut((1.0, 2.0), times=3, not_closed=1))
    assert [(label, ok) for label, ok, _ in found] == [
        ("no errors", True),
        ("upstream closed ≤ 50 ms after the client left (p95)", False),
        ("upstream closed ≤ 50 ms after the client left (max)", False),
    ]
    assert "1 never closed" in found[-1][2]


def test_unknown_rss_misses_its_goal() -> None:
    found = {label: ok for label, ok, _ in streams.goals(held(rss_peak_mb=None), None)}
    assert found["peak RSS ≤ 150 MB with 1,000 streams open"] is False


def test_the_table_has_a_row_per_target() -> None:
    table = streams.streams_table(
        {"direct": held(rss_before_mb=30.2, rss_peak_mb=95.0), "kodify": held(errors=2)},
        {"kodify": cut(errors=1), "litellm": cut((40.0, 80.0), not_closed=2)},
    )
    lines = table.splitlines()
    assert lines[0] == (
        "| target | streams | errors | RSS before → peak (MB) | max chunk gap (s) "
        "| worst lateness (ms) | disconnect p50 (ms) | p95 (ms) | max (ms) | not closed |"
    )
    assert lines[1] == "|" + "---|" * 10
    assert lines[2] == "| direct | 1,000 | 0 | 30 → 95 | 3.04 | 42 | n/a | n/a | n/a | n/a |"
    assert (
        lines[3] == "| kodify | 1,000 | 2 | 80 → 122 | 3.04 | 42 | 2.0 | 3.0 | 3.0 | 0 (1 failed) |"
    )
    assert lines[4] == "| litellm | n/a | n/a | n/a | n/a | n/a | 40.0 | 80.0 | 80.0 | 2 |"
    assert len(lines) == 5


# -- the fake's record of disconnects ----------------------------------------------------


def test_the_fake_keeps_the_newest_disconnects_only() -> None:
    fake = FakeUpstream(disconnects_kept=2)
    for number, request_id in enumerate(("a", "b", "c", "b")):
        request = make_mocked_request("POST", "/", headers={"X-Request-Id": request_id})
        fake._note_disconnect(request, float(number))
    fake._note_disconnect(make_mocked_request("POST", "/"), 9.0)  # no id: not kept
    assert fake.disconnected_at == {"c": 2.0, "b": 3.0}


@pytest.fixture
def fake() -> Iterator[FakeUpstreamServer]:
    server = FakeUpstreamServer(FakeUpstream()).start()
    yield server
    server.stop()


async def test_the_fake_serves_when_a_client_went_away(fake: FakeUpstreamServer) -> None:
    request_id = f"bench-disc-{uuid.uuid4().hex}"
    body = streams.stream_body(400, 0.05)
    async with aiohttp.ClientSession() as session:
        cut_at = await streams._cut_after_first_chunk(
            session, fake.url + streams.CHAT_PATH, {**HEADERS, "X-Request-Id": request_id}, body
        )
        seen_at = await streams.wait_for_disconnect(session, fake.url, request_id)
        assert seen_at is not None and cut_at <= seen_at <= time.monotonic()
        async with session.get(fake.url + streams.DISCONNECTS_PATH) as response:
            assert orjson.loads(await response.read()) == {request_id: seen_at}
        params = {"id": "bench-disc-never"}
        async with session.get(fake.url + streams.DISCONNECTS_PATH, params=params) as response:
            assert orjson.loads(await response.read()) == {}
    assert fake.fake.count("disconnected") == 1


# -- end to end against the fake itself --------------------------------------------------


async def test_open_streams_against_the_fake(fake: FakeUpstreamServer) -> None:
    result = await streams.hold_open_streams(
        fake.url + streams.CHAT_PATH, HEADERS, os.getpid(), count=20, hold_s=1.0, chunks=5
    )
    assert (result.requests, result.errors) == (20, 0), result.error_samples
    assert (result.chunks, result.delay_s) == (5, pytest.approx(0.2))
    assert result.worst_lateness_ms is not None and result.worst_lateness_ms >= 0
    assert result.max_gap_s is not None and result.max_gap_s > 0
    assert result.rss_before_mb is not None and result.rss_peak_mb is not None
    assert fake.fake.completed == 20


async def test_disconnects_against_the_fake(fake: FakeUpstreamServer) -> None:
    result = await streams.measure_disconnects(
        fake.url + streams.CHAT_PATH, HEADERS, fake.url, times=3
    )
    assert (result.times, result.errors, result.not_closed) == (3, 0, 0), result.error_samples
    assert len(result.closed_ms) == 3
    assert all(value >= 0 for value in result.closed_ms)


def test_the_bench_wrappers_time_a_fake_in_its_own_process(tmp_path: Path) -> None:
    """As the bench runs them: the fake a process of its own, so its clock and the
    client's are compared across processes."""
    server, url = start_fake_upstream(tmp_path, 16, ("fake-model",))
    try:
        target = Target("direct", url, server)
        opened = streams.open_streams(target, target, count=10, hold_s=0.5, chunks=5)
        assert opened.errors == 0, opened.error_samples
        assert opened.rss_peak_mb is not None  # the fake's, sampled by its pid
        closed = streams.disconnects(target, target, times=2)
        assert (closed.errors, closed.not_closed) == (0, 0), closed.error_samples
        assert all(value >= 0 for value in closed.closed_ms)
    finally:
        server.stop()
