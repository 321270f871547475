"""Kodify's model server: start vLLM from the administrator guide's environment variables.

The guide configures the model server with variables (``GPUUTIL``, ``DTYPE``, ``EAGER``,
``ADDITIONAL_ARGS`` …) rather than with ``vllm serve`` flags.  This launcher checks them,
turns them into the ``vllm serve`` command line and replaces itself with vLLM
(``os.execvpe``), so vLLM gets the container's signals and its exit status directly.
A bad value stops the start before vLLM loads anything: one sentence per problem on
stderr, exit status 2.

Why this module reads the environment itself (elsewhere only ``kodify_site/settings.py``
does): it runs inside the vLLM container, not inside Kodify.  The model-server image is
the official vLLM image with this one file copied in (``python3 /opt/kodify/model_server.py``),
and that image has neither Django nor any of Kodify's dependencies, so this file uses the
standard library only and imports nothing from Kodify.  ``manage.py run_model_server`` runs
the same code from Kodify's own image.

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
listing every problem), :func:`split_additional_args`, :func:`format_command`,
:func:`add_arguments` and :func:`run` (shared with the management command), :func:`main`.

Exit status: 0 (``--print`` done), 2 (bad variables or options; vLLM not started),
126 (vLLM found but cannot be executed), 127 (vLLM not found); once vLLM runs, its own.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

EXIT_OK = 0
EXIT_BAD_CONFIG = 2
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127

ENTRYPOINTS = ("serve", "module")
API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
DTYPE_HINTS = {"fp16": "float16", "f16": "float16", "bf16": "bfloat16", "fp32": "float32"}
MULTIPROC_METHODS = ("spawn", "fork", "forkserver")
# The same words as Kodify's own boolean variables (kodify_site/env.py).
TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", "n", "f"})
DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - vLLM must be reachable from the gateway's container
DEFAULT_PORT = "8000"
# Set when absent: the weights are delivered offline and customers' hosts are air-gapped.
ENVIRONMENT_DEFAULTS = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
HIDDEN = "<hidden>"
# Options whose values are secrets: masked wherever a command line is shown.
SECRET_OPTIONS = frozenset({"--api-key", "--hf-token"})
SECRET_NAME_PARTS = frozenset({"KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD"})
# Shown by --print when set, besides any VLLM_* and HF_* variable.
SHOWN_ENVIRONMENT = (
    "PYTORCH_CUDA_ALLOC_CONF",
    "NVIDIA_VISIBLE_DEVICES",
    "CUDA_VISIBLE_DEVICES",
    "TRANSFORMERS_OFFLINE",
)


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

# vLLM option → the variable that sets it (for refusing ADDITIONAL_ARGS that repeat one).
OWNED_OPTIONS = {
    "--model": "MODEL",
    "--served-model-name": "SERVED_MODEL_NAME",
    "--max-model-len": "MAX_MODEL_LEN",
    "--host": "HOST",
    "--port": "PORT",
    "--gpu-memory-utilization": "GPUUTIL",
    "--dtype": "DTYPE",
    "--enforce-eager": "EAGER",
    "--api-key": "VLLM_API_KEY",
}


class Writer(Protocol):
    def write(self, text: str, /) -> object: ...


class ConfigError(Exception):
    """The variables cannot start vLLM; ``problems`` holds one sentence per problem."""

    def __init__(self, problems: Sequence[str], warnings: Sequence[str] = ()) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)
        self.warnings = list(warnings)


@dataclass(frozen=True)
class LaunchPlan:
    """What :func:`run` executes: the command line and vLLM's whole environment."""

    argv: list[str]
    env: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """The ``--print`` text: the environment worth seeing, then the command, masked."""
        lines = [f"# {name}={value}" for name, value in shown_environment(self.env)]
        return "\n".join([*lines, format_command(self.argv)])


# -- reading the variables ------------------------------------------------------------------


def _get(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _gpu_utilization(value: str) -> tuple[str | None, str | None]:
    # A decimal comma is how Russian-speaking administrators (the guide's readers) write
    # 0.9; between 0 and 1 it cannot be a thousands separator.
    text = value.replace(",", ".", 1) if value.count(",") == 1 and "." not in value else value
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number) and 0 < number <= 1:
        return text, None
    hint = "e.g. 0.9"
    if math.isfinite(number) and 10 <= number <= 100:  # a percentage
        hint = f"e.g. {number / 100:g} for {number:g} %"
    return None, (
        f"GPUUTIL={value}: must be a number above 0 and at most 1 "
        f"(the share of GPU memory vLLM may use), {hint}."
    )


def _whole_number(name: str, value: str, low: int, high: int | None, example: str) -> str | None:
    if (
        re.fullmatch(r"[0-9]+", value)
        and low <= int(value)
        and (high is None or int(value) <= high)
    ):
        return None
    limits = f"from {low} to {high}" if high is not None else f"of {low} or more"
    return f"{name}={value}: must be a whole number {limits}, e.g. {example}."


def _model_problems(model: str) -> tuple[list[str], list[str]]:
    if os.path.isfile(model) and model.endswith(".gguf"):
        return [], []
    if not os.path.isdir(model):
        return [
            f"MODEL={model}: no such folder in this container; mount the host's weights "
            "folder (e.g. /opt/mtsai/models) read-only and point MODEL at the model's folder "
            "inside it, e.g. /models/Qwen2.5-Coder-7B-Instruct."
        ], []
    if not any(os.path.isfile(os.path.join(model, f)) for f in ("config.json", "params.json")):
        return [], [
            f"MODEL={model}: the folder holds no config.json; vLLM will probably fail to "
            "load it, so point MODEL at the folder that holds config.json and the weights."
        ]
    return [], []


def _served_name(model: str) -> str:
    name = os.path.basename(model.rstrip("/")) or model
    return name[: -len(".gguf")] if name.endswith(".gguf") else name


def is_option(token: str) -> bool:
    """``--x`` or ``-x``, but not a negative number such as ``-1``."""
    return token.startswith("--") or (len(token) > 1 and token[0] == "-" and token[1].isalpha())


def option_name(token: str) -> str:
    """The flag's canonical name: vLLM reads ``--max_model_len`` as ``--max-model-len``."""
    name = token.split("=", 1)[0]
    if name.startswith("--"):
        name = "--" + name[2:].replace("_", "-")
    # --no-enforce-eager is the negative of --enforce-eager (argparse's BooleanOptionalAction).
    if name.startswith("--no-") and "--" + name[5:] in OWNED_OPTIONS:
        name = "--" + name[5:]
    return name


def split_additional_args(
    text: str, source: str = "ADDITIONAL_ARGS"
) -> tuple[list[str], list[str], list[str]]:
    """Split ``text`` like a shell and join the guide's ``--flag = value`` into ``--flag=value``.

    Returns ``(arguments, problems, warnings)``.  Problems never quote ``text`` whole: it
    may hold a key (``--api-key …``).
    """
    try:
        words = shlex.split(text)
    except ValueError as exc:
        return [], [f"{source} cannot be split into arguments ({exc}); check its quotes."], []
    warnings: list[str] = []
    # docker run --env-file keeps quotes, so ADDITIONAL_ARGS="--tensor-parallel-size 2"
    # arrives as one quoted word; a single word such as '--x={"a": 1}' is left alone.
    if len(words) == 1 and words[0].startswith("-") and "=" not in words[0].split()[0]:
        inner = words[0].split()
        if len(inner) > 1:
            words = shlex.split(words[0])
            warnings.append(
                f"{source} is quoted as a whole (docker --env-file keeps quotes): read as "
                "the arguments inside the quotes."
            )
    arguments, problems = join_equals(words, source)
    return arguments, problems, warnings


def join_equals(words: Sequence[str], source: str) -> tuple[list[str], list[str]]:
    """Join the guide's ``--flag = value`` (and ``--flag =value``, ``--flag= value``).

    Returns ``(arguments, problems)``.
    """
    arguments: list[str] = []
    problems: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        previous = arguments[-1] if arguments else ""
        joinable = is_option(previous) and "=" not in previous
        if word == "=":
            if not joinable or i + 1 >= len(words):
                problems.append(
                    f"{source}: a lone '=' must stand between a flag and its value, e.g. "
                    "--tensor-parallel-size = 2."
                )
                i += 2  # the value went with the stray '=': one problem, not two
                continue
            arguments[-1] = f"{previous}={words[i + 1]}"
            i += 2
        elif word.startswith("=") and joinable:  # "--flag =2"
            arguments[-1] = previous + word
            i += 1
        elif is_option(word) and word.endswith("=") and word.count("=") == 1:  # "--flag= 2"
            if i + 1 >= len(words):
                problems.append(f"{source}: {word} has no value after '='.")
                i += 1
                continue
            arguments.append(word + words[i + 1])
            i += 2
        else:
            arguments.append(word)
            i += 1
    if arguments and not problems and not is_option(arguments[0]):
        problems.append(
            f"{source} must start with a flag such as --tensor-parallel-size (two dashes), "
            f"not {mask_argv(arguments)[0]}."
        )
    return arguments, problems


def _check_environment(environ: Mapping[str, str]) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    warnings: list[str] = []
    alloc = _get(environ, "PYTORCH_CUDA_ALLOC_CONF")
    if alloc is not None and ":" not in alloc:
        problems.append(
            f"PYTORCH_CUDA_ALLOC_CONF={alloc}: must be option:value pairs separated by "
            "commas, e.g. expandable_segments:True."
        )
    method = _get(environ, "VLLM_WORKER_MULTIPROC_METHOD")
    if method is not None and method not in MULTIPROC_METHODS:
        problems.append(
            f"VLLM_WORKER_MULTIPROC_METHOD={method}: must be one of "
            f"{', '.join(MULTIPROC_METHODS)} (how vLLM starts its GPU workers), e.g. spawn."
        )
    devices = _get(environ, "NVIDIA_VISIBLE_DEVICES")
    device = r"(?:[0-9]+|(?:GPU|MIG)-[0-9A-Za-z/-]+)"
    # Only a warning: the NVIDIA runtime has already read it when the container started,
    # so it changes nothing here, and device plugins set forms such as a path.
    if devices is not None and not re.fullmatch(
        rf"all|none|void|/\S*|{device}(?:,{device})*", devices
    ):
        warnings.append(
            f"NVIDIA_VISIBLE_DEVICES={devices}: expected all, none, or GPU indices or UUIDs "
            "separated by commas without spaces (e.g. 0,1); the NVIDIA runtime may not have "
            "given this container the GPUs you meant."
        )
    use_v1 = _get(environ, "VLLM_USE_V1")
    if use_v1 is not None:
        why = (
            "the V0 engine it asks for no longer exists and vLLM runs V1"
            if use_v1.lower() in FALSE_WORDS
            else "current vLLM has only the V1 engine, so the variable changes nothing"
        )
        warnings.append(f"VLLM_USE_V1={use_v1}: ignored and not passed to vLLM; {why}.")
    vllm_port = environ.get("VLLM_PORT", "")
    if "://" in vllm_port:
        warnings.append(
            f"VLLM_PORT={vllm_port}: set by Kubernetes for a Service named vllm, not a port; "
            "removed from vLLM's environment, which would refuse it; name the Service "
            "otherwise or set enableServiceLinks: false."
        )
    return problems, warnings


def build_plan(
    environ: Mapping[str, str] | None = None,
    *,
    extra_args: Sequence[str] = (),
    entrypoint: str | None = None,
    python: str | None = None,
    check_model: bool = True,
) -> LaunchPlan:
    """Check the variables and build vLLM's command line and environment.

    ``extra_args`` are flags given on the launcher's own command line (after ``--``);
    they are checked like ``ADDITIONAL_ARGS``.  Raises :class:`ConfigError` with every
    problem found, not only the first.
    """
    environ = os.environ if environ is None else environ
    problems, warnings = _check_environment(environ)

    entrypoint = entrypoint or _get(environ, "KODIFY_VLLM_ENTRYPOINT") or "serve"
    if entrypoint not in ENTRYPOINTS:
        problems.append(
            f"KODIFY_VLLM_ENTRYPOINT={entrypoint}: must be serve (vllm serve MODEL) or "
            f"module (python -m {API_SERVER_MODULE})."
        )
    python = python or _get(environ, "KODIFY_VLLM_PYTHON") or sys.executable or "python3"

    model = _get(environ, "MODEL")
    if model is None:
        problems.append(
            "MODEL is not set: set it to the weights folder inside the container, "
            "e.g. MODEL=/models/Qwen2.5-Coder-7B-Instruct."
        )
    elif check_model:
        model_problems, model_warnings = _model_problems(model)
        problems += model_problems
        warnings += model_warnings

    # Each owned option once: (variable value or default, whether a variable set it).
    chosen: dict[str, tuple[str | None, bool]] = {}

    served = _get(environ, "SERVED_MODEL_NAME")
    if served is not None and len(served.split()) > 1:
        problems.append(
            f"SERVED_MODEL_NAME={served}: must be one name without spaces (clients send it "
            "as the model), e.g. qwen2.5-coder-7b."
        )
    chosen["--served-model-name"] = (
        served or (_served_name(model) if model else None),
        served is not None,
    )

    max_len = _get(environ, "MAX_MODEL_LEN")
    if max_len is not None and (
        problem := _whole_number("MAX_MODEL_LEN", max_len, 1, None, "32768")
    ):
        problems.append(problem)
    chosen["--max-model-len"] = (max_len, max_len is not None)

    host = _get(environ, "HOST")
    if host is not None and len(host.split()) > 1:
        problems.append(
            f"HOST={host}: must be one address or host name, e.g. 0.0.0.0 (every interface)."
        )
    chosen["--host"] = (host or DEFAULT_HOST, host is not None)

    port = _get(environ, "PORT")
    if port is not None and (problem := _whole_number("PORT", port, 1, 65535, DEFAULT_PORT)):
        problems.append(problem)
    chosen["--port"] = (port or DEFAULT_PORT, port is not None)

    gpuutil = _get(environ, "GPUUTIL")
    gpu_value = None
    if gpuutil is not None:
        gpu_value, problem = _gpu_utilization(gpuutil)
        if problem:
            problems.append(problem)
    chosen["--gpu-memory-utilization"] = (gpu_value, gpuutil is not None)

    dtype = _get(environ, "DTYPE")
    if dtype is not None and dtype.lower() not in DTYPES:
        hint = DTYPE_HINTS.get(dtype.lower())
        problems.append(
            f"DTYPE={dtype}: must be one of {', '.join(DTYPES)} (the type of the model's "
            + (f"weights); write {hint} for {dtype}." if hint else "weights); unset means auto.")
        )
    chosen["--dtype"] = ((dtype or "auto").lower(), dtype is not None)

    eager = _get(environ, "EAGER")
    eager_on = False
    if eager is not None:
        if eager.lower() in TRUE_WORDS:
            eager_on = True
        elif eager.lower() not in FALSE_WORDS:
            problems.append(
                f"EAGER={eager}: must be 1 (or true, yes, on) to turn eager mode on, or "
                "empty (or 0, false, no, off) to leave it off."
            )
    chosen["--enforce-eager"] = ("" if eager_on else None, eager is not None)

    api_key = _get(environ, "VLLM_API_KEY")
    chosen["--api-key"] = (None, api_key is not None)
    chosen["--model"] = (None, True)

    arguments, arg_problems, arg_warnings = split_additional_args(
        environ.get("ADDITIONAL_ARGS", ""), "ADDITIONAL_ARGS"
    )
    problems += arg_problems
    warnings += arg_warnings
    appended = _check_owned(arguments, "ADDITIONAL_ARGS", chosen, problems, warnings)
    extra, extra_problems = join_equals(extra_args, "the command line")
    problems += extra_problems
    appended += _check_owned(extra, "the command line", chosen, problems, warnings)

    if problems:
        raise ConfigError(problems, warnings)
    assert model is not None  # a missing MODEL is a problem above

    if entrypoint == "module":
        argv = [python, "-m", API_SERVER_MODULE, "--model", model]
    else:
        argv = ["vllm", "serve", model]
    for option, (value, _) in chosen.items():
        if value is None:
            continue
        argv += [option] if value == "" else [option, value]
    argv += appended

    env = dict(environ)
    for name, value in ENVIRONMENT_DEFAULTS.items():
        if not env.get(name, "").strip():
            env[name] = value
    env.pop("VLLM_USE_V1", None)
    if "://" in env.get("VLLM_PORT", ""):
        del env["VLLM_PORT"]
    return LaunchPlan(argv=argv, env=env, warnings=warnings)


def _check_owned(
    arguments: list[str],
    source: str,
    chosen: dict[str, tuple[str | None, bool]],
    problems: list[str],
    warnings: list[str],
) -> list[str]:
    """Refuse flags a variable sets; let the others replace the launcher's defaults."""
    for token in arguments:
        if not is_option(token):
            continue
        option = option_name(token)
        if option not in chosen:
            continue
        _, set_by_variable = chosen[option]
        variable = OWNED_OPTIONS[option]
        if set_by_variable:
            problems.append(
                f"{source} sets {option}, which {variable} already sets; keep one of the two "
                f"(remove {option} from {source} or unset {variable})."
            )
            continue
        # A default (DTYPE unset → auto, HOST unset → 0.0.0.0 …) yields to the flag.
        chosen[option] = (None, False)
        if option == "--api-key":
            warnings.append(
                f"{source} sets --api-key: the key shows in the container's process list; "
                "VLLM_API_KEY keeps it out of sight."
            )
    return arguments


# -- showing -------------------------------------------------------------------------------


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME_PARTS.intersection(name.upper().split("_")))


def mask_argv(argv: Iterable[str]) -> list[str]:
    """``argv`` with the values of key options (``--api-key``, ``--hf-token``) hidden."""
    masked: list[str] = []
    hiding = False
    for token in argv:
        if is_option(token):
            hiding = False
            name = option_name(token)
            if name in SECRET_OPTIONS:
                if "=" in token:
                    token = f"{token.split('=', 1)[0]}={HIDDEN}"
                else:
                    hiding = True  # --api-key takes one key or several
            masked.append(token)
        else:
            masked.append(HIDDEN if hiding else token)
    return masked


def format_command(argv: Sequence[str]) -> str:
    """The command line as a shell would read it, keys shown as ``<hidden>``."""
    words = []
    for token in mask_argv(argv):
        if token == HIDDEN or token.endswith("=" + HIDDEN):
            words.append(token)  # quoting would make <hidden> look like a real value
        else:
            words.append(shlex.quote(token))
    return " ".join(words)


def shown_environment(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """The variables of vLLM's environment worth showing, secrets hidden, sorted."""
    names = [
        name
        for name in env
        if name in SHOWN_ENVIRONMENT
        or name.startswith(("VLLM_", "HF_"))
        or name in ENVIRONMENT_DEFAULTS
    ]
    return [(name, HIDDEN if is_secret_name(name) else env[name]) for name in sorted(names)]


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
