"""An action's context trimmed to the model's window, the lines nearest the code kept; the
code itself never trimmed but refused with a sentence when it cannot fit."""

from __future__ import annotations

import pytest

from gateway.actions import fitting
from gateway.actions.fitting import DoesNotFit, fit

pytestmark = pytest.mark.smoke


def test_what_fits_is_left_alone() -> None:
    fitted = fit("x = 1", "y = 2\nz = 3", model="m", max_model_len=4096, answer_tokens=256)
    assert (fitted.context, fitted.context_lines_dropped) == ("y = 2\nz = 3", 0)
    assert fit("x", "y", model="m", max_model_len=None, answer_tokens=None).context == "y"


def test_the_context_keeps_the_lines_nearest_the_code() -> None:
    lines = [f"line {i:04d} " + "x" * 40 for i in range(2000)]
    code = lines[1000].strip()
    fitted = fit(code, "\n".join(lines), model="m", max_model_len=4096, answer_tokens=512)
    kept = fitted.context.split("\n") if fitted.context else []
    assert 0 < len(kept) < 2000 and fitted.context_lines_dropped == 2000 - len(kept)
    numbers = [int(line.split()[1]) for line in kept]
    assert numbers == list(range(numbers[0], numbers[-1] + 1))  # one run, in order
    assert numbers[0] <= 1000 <= numbers[-1]  # around the code
    assert abs((1000 - numbers[0]) - (numbers[-1] - 1000)) <= 1  # as much above as below
    budget = (4096 - 512 - fitting.TEMPLATE_TOKENS - fitting.estimate_tokens(code)) * 2
    assert len("\n".join(kept).encode()) <= budget


def test_without_the_code_in_it_the_contexts_end_is_kept() -> None:
    context = "\n".join(f"before {i} " + "y" * 60 for i in range(3000))
    fitted = fit("new code", context, model="m", max_model_len=2048, answer_tokens=128)
    assert fitted.context is not None and fitted.context.endswith("before 2999 " + "y" * 60)


def test_code_too_long_for_the_model_is_refused_with_the_figures() -> None:
    with pytest.raises(DoesNotFit, match=r"'small' has a context of 1,024 tokens"):
        fit("z" * 10_000, None, model="small", max_model_len=1024, answer_tokens=None)


def test_the_estimate_counts_bytes_not_characters() -> None:
    assert fitting.estimate_tokens("ab") == 1
    assert fitting.estimate_tokens("é") == 1  # two bytes
    assert fitting.estimate_tokens("日本") == 3  # six bytes
