"""``make bench-routing``'s parts that need no vLLM: the trace, the reading of vLLM's
metrics, the figures and their section of RESULTS.md (which ``make bench`` keeps)."""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest

from bench import race, vllm_metrics
from bench.routing_report import END, START, RunFigures, percentile, section, write_section
from bench.routing_trace import Chat, Completion, typing_trace

pytestmark = pytest.mark.smoke


def test_the_trace_is_the_same_for_the_same_seed_and_not_for_another() -> None:
    assert typing_trace(seed=3) == typing_trace(seed=3)
    assert typing_trace(seed=3) != typing_trace(seed=4)


def test_each_files_prefix_grows_and_a_typed_over_completion_has_a_successor() -> None:
    trace = typing_trace(developers=3, files=2, pauses=6, burst=3, typed_on_share=0.5)
    documents = set()
    for developer in trace:
        steps = developer.steps
        by_document: dict[str, list[Completion]] = {}
        for index, step in enumerate(steps):
            if isinstance(step, Completion):
                by_document.setdefault(step.document, []).append(step)
                if step.typed_on_after is not None:  # superseded only by its own document's
                    following = steps[index + 1]
                    assert isinstance(following, Completion)
                    assert following.document == step.document
        assert len(by_document) == 2 and all(len(c) == 6 for c in by_document.values())
        for completions in by_document.values():
            assert len({c.suffix for c in completions}) == 1
            for earlier, later in pairwise(completions):
                assert later.prefix.startswith(earlier.prefix)
                assert len(later.prefix) > len(earlier.prefix)
        # The files take turns, three pauses each: all of them stay in use.
        order = [s.document for s in steps if isinstance(s, Completion)]
        assert order == [a for a in sorted(by_document) for _ in range(3)] * 2
        assert sum(isinstance(step, Chat) for step in steps) == 2  # one a round
        documents |= set(by_document)
    assert len(documents) == 3 * 2  # nobody shares a document
    typed_over = [step for d in trace for step in d.steps if getattr(step, "typed_on_after", None)]
    assert typed_over, "a trace with nothing typed over measures no superseding"


METRICS = """\
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="tiny-qwen"} 600.0
vllm:prefix_cache_queries_created{engine="0",model_name="tiny-qwen"} 1.79e+09
vllm:prefix_cache_hits_total{engine="0",model_name="tiny-qwen"} 256.0
vllm:prefix_cache_hits_total{engine="1",model_name="tiny-qwen"} 64.0
vllm:generation_tokens_total{engine="0",model_name="tiny-qwen"} 1000.0
vllm:num_requests_running{engine="0",model_name="tiny-qwen"} 0.0
"""


def test_metrics_are_summed_over_their_label_sets() -> None:
    found = vllm_metrics.parse(METRICS, (*vllm_metrics.COUNTERS, vllm_metrics.WAITING))
    assert found == {
        vllm_metrics.PREFIX_QUERIES: 600.0,
        vllm_metrics.PREFIX_HITS: 320.0,
        vllm_metrics.GENERATION_TOKENS: 1000.0,
    }  # the _created samples are other names, and a missing one is absent, not 0


def test_the_hit_rate_is_of_both_replicas_together() -> None:
    names = vllm_metrics.PREFIX_QUERIES, vllm_metrics.PREFIX_HITS, vllm_metrics.GENERATION_TOKENS
    before = {"a": dict.fromkeys(names, 0.0), "b": dict.fromkeys(names, 10.0)}
    after = {"a": dict(zip(names, (100.0, 80.0, 50.0), strict=True))}
    after["b"] = dict(zip(names, (110.0, 30.0, 20.0), strict=True))
    counted = vllm_metrics.delta(before, after)
    assert (counted.queries, counted.hits, counted.generated) == (200.0, 100.0, 60.0)
    assert counted.hit_rate == 0.5
    assert vllm_metrics.Delta(0, 0, 0).hit_rate == 0.0


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.5) == 10.0 and percentile(values, 0.95) == 19.0
    assert percentile([7.0], 0.95) == 7.0


def figures(name: str) -> RunFigures:
    return RunFigures(name, 0.625, (12.0, 40.0), (30.0, 90.0), 1234.0, 9, 7, 0, 41.0)


def test_the_section_replaces_its_old_self_and_make_bench_keeps_it(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    first = section([figures("affinity off")], about=["machine: here"])
    assert "| affinity off | 62.5% | 12 / 40 | 30 / 90 | 1,234 | 9 | 7 | 0 | 41 |" in first
    write_section(out, first)
    assert out.read_text() == first

    race.write_results(
        "the race", started=datetime(2026, 1, 2), commit="abc", settings_line="x", path=out
    )
    written = out.read_text()
    assert written.startswith("# Kodify benchmark results") and "the race" in written
    assert written.endswith(first)  # the race rewrote the file and kept the section

    second = section([figures("affinity on")], about=["machine: there"])
    write_section(out, second)
    written = out.read_text()
    assert "the race" in written and "affinity on" in written and "affinity off" not in written
    assert written.count(START) == written.count(END) == 1
