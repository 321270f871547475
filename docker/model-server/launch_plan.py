"""The launcher's plan: the guide's variables checked and turned into vLLM's command line.

The sibling of ``model_server.py``, the model-server image's entry point, which documents
the variables; the image copies both files into one folder.  Like the launcher it runs
inside the vLLM image, so it uses the standard library only and imports nothing from
Kodify.  :class:`ConfigError` lists every problem found, one sentence each, never the
first alone, and never quotes a key.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

ENTRYPOINTS = ("serve", "module")
API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
DTYPE_HINTS = {"fp16": "float16", "f16": "float16", "bf16": "bfloat16", "fp32": "float32"}
MULTIPROC_METHODS = ("spawn", "fork", "forkserver")
# vLLM's --scheduling-policy: first come, first served (its default), or by each request's
# priority (lowest first), which Kodify sets for upstreams marked priority_scheduling.
SCHEDULING_POLICIES = ("fcfs", "priority")
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
    "--scheduling-policy": "SCHEDULING_POLICY",
    "--api-key": "VLLM_API_KEY",
}


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

    policy = _get(environ, "SCHEDULING_POLICY")
    if policy is not None and policy.lower() not in SCHEDULING_POLICIES:
        problems.append(
            f"SCHEDULING_POLICY={policy}: must be fcfs (first come, first served) or "
            "priority (Kodify's autocompletion first: mark the upstream priority_scheduling "
            "in config.yml or the console); unset means fcfs."
        )
    chosen["--scheduling-policy"] = (policy.lower() if policy else None, policy is not None)

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
