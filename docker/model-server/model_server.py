"""Kodify's model server: start vLLM from the administrator guide's environment variables.

The guide configures the model server with variables (``GPUUTIL``, ``DTYPE``, ``EAGER``,
``ADDITIONAL_ARGS`` …) rather than with ``vllm serve`` flags.  This launcher checks them,
turns them into the ``vllm serve`` command line and replaces itself with vLLM
(``os.execvpe``), so vLLM gets the container's signals and its exit status directly.
A bad value stops the start before vLLM loads anything: one sentence per problem on
stderr, exit status 2.

Why this module reads the environment itself (elsewhere only
``kodify_site/settings/`` does): it runs inside the vLLM container, not
inside Kodify.  The model-server image is the official vLLM image with this file and its
sibling ``launch_plan.py`` copied in (``python3 /opt/kodify/model_server.py``), and that
image has neither Django nor any of Kodify's dependencies, so both files use the standard
library only and import nothing from Kodify.  ``manage.py run_model_server`` runs the same
code from Kodify's own image.

Usage::

    python3 /opt/kodify/model_server.py                 # start vLLM
    python3 /opt/kodify/model_server.py --print         # show the command, start nothing
    python3 /opt/kodify/model_server.py -- --seed 1     # more vLLM flags after "--"
    python manage.py run_model_server --print           # the same from Kodify's image

Variables (a blank value counts as unset):

=============================  ===============================  ===========================
Variable                       vLLM                             Default / accepted values
=============================  ===============================  ===========================
MODEL                          model (``vllm serve MODEL``)     required; the weights folder
                                                                inside the container, e.g.
                                                                /models/Qwen2.5-Coder-7B-Instruct
SERVED_MODEL_NAME              --served-model-name              the folder name of MODEL
MAX_MODEL_LEN                  --max-model-len                  the model's own; whole number
HOST                           --host                           0.0.0.0
PORT                           --port                           8000; 1 to 65535
GPUUTIL                        --gpu-memory-utilization         vLLM's 0.9; above 0, at most
                                                                1 ("0,9" is read as 0.9)
DTYPE                          --dtype                          auto; auto, half, float16,
                                                                bfloat16, float, float32
EAGER                          --enforce-eager                  off; 1/true/yes/on: on
SCHEDULING_POLICY              --scheduling-policy              vLLM's fcfs; fcfs, priority
                                                                (autocompletion first)
ADDITIONAL_ARGS                appended as they are             e.g. --tensor-parallel-size 2
                                                                or --tensor-parallel-size = 2
VLLM_API_KEY                   kept in vLLM's environment       unset: vLLM asks no key
VLLM_USE_V1                    removed, with a warning          current vLLM has only V1
PYTORCH_CUDA_ALLOC_CONF        passed through                   e.g. expandable_segments:True
NVIDIA_VISIBLE_DEVICES         passed through                   all, or indices/UUIDs: 0,1
VLLM_WORKER_MULTIPROC_METHOD   passed through                   spawn, fork, forkserver
HF_HUB_OFFLINE                 passed through                   1 (weights are delivered)
VLLM_NO_USAGE_STATS            passed through                   1 (no usage reports)
KODIFY_VLLM_ENTRYPOINT         how vLLM is started              serve (``vllm serve``) or
                                                                module (``python -m
                                                                vllm.entrypoints.openai.
                                                                api_server --model MODEL``)
KODIFY_VLLM_PYTHON             Python for ``module``            this launcher's Python
=============================  ===============================  ===========================

Every other variable reaches vLLM unchanged.  ``VLLM_API_KEY`` stays in the environment,
which vLLM reads itself, rather than becoming ``--api-key``: a command line is visible to
every process of the container (``ps``, ``/proc/*/cmdline``), the environment is not.
Kodify sends the same variable to the upstreams, so one-token mode needs it set once.
An ``ADDITIONAL_ARGS`` flag that repeats a variable which is set (``--dtype`` with
``DTYPE``) is refused rather than one of them silently winning; a default (``DTYPE`` unset
→ ``auto``, ``HOST`` unset …) yields to the flag.  Key values are never printed:
``--print`` and the start line show ``<hidden>``.

Public API: :func:`build_plan` (environment → :class:`LaunchPlan`, or :class:`ConfigError`
listing every problem), :func:`split_additional_args`, :func:`format_command` (all three
from ``launch_plan.py``), :func:`add_arguments` and :func:`run` (shared with the management
command), :func:`main`.

Exit status: 0 (``--print`` done), 2 (bad variables or options; vLLM not started),
126 (vLLM found but cannot be executed), 127 (vLLM not found); once vLLM runs, its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

# The image copies launch_plan.py beside this script; neither ``python3 -I`` nor a load by
# file path (``manage.py run_model_server``) puts this folder on the path by itself.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from launch_plan import (
    API_SERVER_MODULE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DTYPES,
    ENTRYPOINTS,
    MULTIPROC_METHODS,
    SCHEDULING_POLICIES,
    SHOWN_ENVIRONMENT,
    ConfigError,
    LaunchPlan,
    build_plan,
    format_command,
    split_additional_args,
)

__all__ = [
    "API_SERVER_MODULE",
    "DESCRIPTION",
    "EXIT_BAD_CONFIG",
    "EXIT_CANNOT_EXECUTE",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "SHOWN_ENVIRONMENT",
    "VARIABLES",
    "ConfigError",
    "Documented",
    "LaunchPlan",
    "add_arguments",
    "build_plan",
    "format_command",
    "help_epilog",
    "main",
    "run",
    "split_additional_args",
]

EXIT_OK = 0
EXIT_BAD_CONFIG = 2
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127


@dataclass(frozen=True)
class Documented:
    """One row of the variable table (``--help``, the docstring, the model server's README)."""

    name: str
    vllm: str
    default: str
    meaning: str


VARIABLES: tuple[Documented, ...] = (
    Documented(
        "MODEL",
        "model argument",
        "required",
        "Folder of the weights inside the container (config.json, tokenizer, weights), "
        "e.g. /models/Qwen2.5-Coder-7B-Instruct.",
    ),
    Documented(
        "SERVED_MODEL_NAME",
        "--served-model-name",
        "the folder name of MODEL",
        "The name clients and Kodify's config.yml use for the model.",
    ),
    Documented(
        "MAX_MODEL_LEN",
        "--max-model-len",
        "the model's own",
        "Longest prompt plus answer, in tokens (a whole number).",
    ),
    Documented("HOST", "--host", DEFAULT_HOST, "Address vLLM listens on."),
    Documented("PORT", "--port", DEFAULT_PORT, "Port vLLM listens on (1 to 65535)."),
    Documented(
        "GPUUTIL",
        "--gpu-memory-utilization",
        "vLLM's 0.9",
        "Share of GPU memory vLLM may take (weights, activations, KV cache): above 0, at "
        "most 1; a decimal comma is accepted. GPU_for_Kodify / GPU_total when other "
        "software shares the card.",
    ),
    Documented(
        "DTYPE",
        "--dtype",
        "auto",
        "Type of the weights: " + ", ".join(DTYPES) + ".",
    ),
    Documented(
        "EAGER",
        "--enforce-eager",
        "off",
        "1 (true, yes, on) turns eager mode on (no CUDA graphs: less memory, slower); "
        "empty or 0 leaves it off.",
    ),
    Documented(
        "SCHEDULING_POLICY",
        "--scheduling-policy",
        "vLLM's fcfs",
        "One of " + ", ".join(SCHEDULING_POLICIES) + ". priority: vLLM serves the lowest "
        "priority first; with priority_scheduling on this upstream (config.yml or the "
        "console), Kodify sends autocompletions ahead of chat and actions.",
    ),
    Documented(
        "ADDITIONAL_ARGS",
        "appended",
        "none",
        "More vLLM flags, e.g. --tensor-parallel-size 2 or the guide's "
        "--tensor-parallel-size = 2; a flag that a variable above already sets is refused.",
    ),
    Documented(
        "VLLM_API_KEY",
        "environment (vLLM reads it)",
        "unset: no key",
        "Key vLLM asks of its clients; Kodify sends the same variable. Never printed.",
    ),
    Documented(
        "VLLM_USE_V1",
        "removed",
        "unset",
        "Ignored with a warning: current vLLM has only the V1 engine.",
    ),
    Documented(
        "PYTORCH_CUDA_ALLOC_CONF",
        "environment",
        "unset",
        "PyTorch allocator settings; expandable_segments:True when vLLM runs out of memory "
        "while serving.",
    ),
    Documented(
        "NVIDIA_VISIBLE_DEVICES",
        "environment",
        "the container's",
        "GPUs the container sees: all, or indices or UUIDs separated by commas (0,1). "
        "Read by the NVIDIA runtime when the container starts.",
    ),
    Documented(
        "VLLM_WORKER_MULTIPROC_METHOD",
        "environment",
        "vLLM's",
        "How vLLM starts its GPU workers: " + ", ".join(MULTIPROC_METHODS) + ".",
    ),
    Documented(
        "HF_HUB_OFFLINE",
        "environment",
        "1",
        "1: never reach the Hugging Face hub (weights come from MODEL).",
    ),
    Documented(
        "VLLM_NO_USAGE_STATS",
        "environment",
        "1",
        "1: vLLM sends no usage statistics.",
    ),
    Documented(
        "KODIFY_VLLM_ENTRYPOINT",
        "command",
        "serve",
        f"serve: vllm serve MODEL …; module: python -m {API_SERVER_MODULE} --model MODEL … "
        "(for installs whose vllm script is broken, such as the CPU build).",
    ),
    Documented(
        "KODIFY_VLLM_PYTHON",
        "command",
        "this launcher's Python",
        "The Python that runs vLLM with KODIFY_VLLM_ENTRYPOINT=module.",
    ),
)


class Writer(Protocol):
    def write(self, text: str, /) -> object: ...


# -- command line ---------------------------------------------------------------------------


def help_epilog() -> str:
    """The variable table for ``--help``."""
    width = max(len(v.name) for v in VARIABLES)
    lines = ["variables (a blank value counts as unset):"]
    for v in VARIABLES:
        lines.append(f"  {v.name.ljust(width)}  → {v.vllm}; default: {v.default}")
        lines += textwrap.wrap(
            v.meaning, 96, initial_indent=" " * (width + 6), subsequent_indent=" " * (width + 6)
        )
    lines += [
        "",
        *textwrap.wrap(
            "exit status: 0 after --print; 2 when a variable or option is wrong (vLLM is "
            "not started); 126 when vLLM cannot be executed; 127 when it is not found; "
            "otherwise vLLM's own.",
            96,
        ),
    ]
    return "\n".join(lines)


DESCRIPTION = (
    "Start vLLM (Kodify's model server) from the administrator guide's environment "
    "variables: check them, build the vllm serve command line and replace this process "
    "with vLLM."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The launcher's options; ``manage.py run_model_server`` shares them."""
    parser.add_argument(
        "--print",
        "--dry-run",
        dest="print_only",
        action="store_true",
        help="Print vLLM's command line (and the variables it gets) and start nothing.",
    )
    parser.add_argument(
        "--skip-model-check",
        dest="check_model",
        action="store_false",
        help="Do not check that MODEL exists (to preview the command on another machine).",
    )
    parser.add_argument(
        "--entrypoint",
        choices=ENTRYPOINTS,
        help="serve: vllm serve MODEL; module: python -m "
        f"{API_SERVER_MODULE} --model MODEL (default: KODIFY_VLLM_ENTRYPOINT, else serve).",
    )
    parser.add_argument(
        "--python",
        help="Python that runs vLLM with --entrypoint module (default: KODIFY_VLLM_PYTHON, "
        "else this one).",
    )
    parser.add_argument(
        "vllm_args",
        nargs="*",
        metavar="-- VLLM_ARGS",
        help="More vLLM flags after '--', checked like ADDITIONAL_ARGS.",
    )


def run(
    *,
    print_only: bool = False,
    check_model: bool = True,
    entrypoint: str | None = None,
    python: str | None = None,
    vllm_args: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    stdout: Writer | None = None,
    stderr: Writer | None = None,
) -> int:
    """Build the plan and print it or exec vLLM; returns the exit status when vLLM did not start."""
    out: Writer = stdout if stdout is not None else sys.stdout
    err: Writer = stderr if stderr is not None else sys.stderr
    try:
        plan = build_plan(
            environ,
            extra_args=vllm_args,
            entrypoint=entrypoint,
            python=python,
            check_model=check_model,
        )
    except ConfigError as exc:
        for warning in exc.warnings:
            err.write(f"warning: {warning}\n")
        for problem in exc.problems:
            err.write(f"error: {problem}\n")
        return EXIT_BAD_CONFIG
    for warning in plan.warnings:
        err.write(f"warning: {warning}\n")
    if print_only:
        out.write(plan.describe() + "\n")
        return EXIT_OK
    err.write(f"starting vLLM: {format_command(plan.argv)}\n")
    # exec replaces the process without flushing Python's buffers.
    for stream in (out, err, sys.stdout, sys.stderr):
        flush = getattr(stream, "flush", None)
        if flush is not None:
            flush()
    try:
        os.execvpe(plan.argv[0], plan.argv, plan.env)  # noqa: S606 - the whole point
    except FileNotFoundError:
        hint = (
            "is this the vLLM image? Where the vllm script is missing or broken (the CPU "
            "build), set KODIFY_VLLM_ENTRYPOINT=module."
            if plan.argv[0] == "vllm"
            else "set KODIFY_VLLM_PYTHON to the Python that has vLLM installed."
        )
        err.write(f"error: {plan.argv[0]} was not found on PATH; {hint}\n")
        return EXIT_NOT_FOUND
    except OSError as exc:
        err.write(f"error: {plan.argv[0]} cannot be executed ({exc.strerror or exc}).\n")
        return EXIT_CANNOT_EXECUTE
    return EXIT_OK  # only when a test replaces os.execvpe


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="model_server.py",
        description=DESCRIPTION,
        epilog=help_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    options = parser.parse_args(argv)
    return run(environ=environ, **vars(options))


if __name__ == "__main__":
    raise SystemExit(main())
