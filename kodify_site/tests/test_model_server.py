"""The vLLM launcher (``docker/model-server/model_server.py``, ``manage.py run_model_server``).

It maps the guide's variables to ``vllm serve`` flags, refuses bad values before vLLM
starts (exit 2, one sentence per problem), never shows a key, and runs alone in the vLLM
image: the script and its sibling must import nothing outside the standard library.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from kodify_site.management.commands.run_model_server import LAUNCHER, load_launcher
from kodify_site.testing import REPO

pytestmark = pytest.mark.smoke

# The script is no module of Kodify's packages: the management command's loader gives the
# one module object that the command runs, so patching it here reaches the command too.
model_server = load_launcher()
API_SERVER_MODULE = model_server.API_SERVER_MODULE
EXIT_BAD_CONFIG = model_server.EXIT_BAD_CONFIG
EXIT_CANNOT_EXECUTE = model_server.EXIT_CANNOT_EXECUTE
EXIT_NOT_FOUND = model_server.EXIT_NOT_FOUND
EXIT_OK = model_server.EXIT_OK
VARIABLES = model_server.VARIABLES
ConfigError = model_server.ConfigError
build_plan = model_server.build_plan
format_command = model_server.format_command
split_additional_args = model_server.split_additional_args

SCRIPT = LAUNCHER
# The files the image copies beside the script, by the name the script imports them under.
SIBLINGS = {"launch_plan": SCRIPT.parent / "launch_plan.py"}
MODEL = "/models/Qwen2.5-Coder-7B-Instruct"
KEY = "sk-very-secret-key-4711"
# The flags every plan carries when no variable but MODEL is set.
DEFAULT_FLAGS = [
    "--served-model-name",
    "Qwen2.5-Coder-7B-Instruct",
    "--host",
    "0.0.0.0",
    "--port",
    "8000",
    "--dtype",
    "auto",
]
# Cleared from os.environ for the tests that read it (the management command).
LAUNCHER_VARIABLES = [v.name for v in VARIABLES] + ["VLLM_PORT", "HF_TOKEN"]


def plan(**variables: str) -> Any:  # a LaunchPlan
    return build_plan({"MODEL": MODEL, **variables}, check_model=False)


def problems(environ: dict[str, str], **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_plan(environ, **{"check_model": False, **kwargs})
    return caught.value.problems


def flags(launch: Any) -> list[str]:
    assert launch.argv[:3] == ["vllm", "serve", MODEL]
    return launch.argv[3:]


def minimal_env(**variables: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **variables}


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "Qwen2.5-Coder-7B-Instruct"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


class Exec:
    """Stands in for os.execvpe: records the call instead of replacing the process."""

    def __init__(self, error: OSError | None = None) -> None:
        self.calls: list[tuple[str, list[str], dict[str, str]]] = []
        self.error = error

    def __call__(self, file: str, argv: list[str], env: dict[str, str]) -> None:
        self.calls.append((file, list(argv), dict(env)))
        if self.error is not None:
            raise self.error


@pytest.fixture
def fake_exec(monkeypatch: pytest.MonkeyPatch) -> Exec:
    recorder = Exec()
    monkeypatch.setattr(model_server.os, "execvpe", recorder)
    return recorder


# -- the mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, DEFAULT_FLAGS),
        (
            {"GPUUTIL": "0.9"},
            [*DEFAULT_FLAGS[:6], "--gpu-memory-utilization", "0.9", "--dtype", "auto"],
        ),
        (
            {"GPUUTIL": "0,85"},
            [*DEFAULT_FLAGS[:6], "--gpu-memory-utilization", "0.85", "--dtype", "auto"],
        ),
        (
            {"GPUUTIL": " 1 "},
            [*DEFAULT_FLAGS[:6], "--gpu-memory-utilization", "1", "--dtype", "auto"],
        ),
        ({"GPUUTIL": ""}, DEFAULT_FLAGS),
        ({"DTYPE": "bfloat16"}, [*DEFAULT_FLAGS[:6], "--dtype", "bfloat16"]),
        ({"DTYPE": "Half"}, [*DEFAULT_FLAGS[:6], "--dtype", "half"]),
        ({"DTYPE": "float32"}, [*DEFAULT_FLAGS[:6], "--dtype", "float32"]),
        ({"DTYPE": ""}, DEFAULT_FLAGS),
        ({"EAGER": "1"}, [*DEFAULT_FLAGS, "--enforce-eager"]),
        ({"EAGER": "true"}, [*DEFAULT_FLAGS, "--enforce-eager"]),
        ({"EAGER": "YES"}, [*DEFAULT_FLAGS, "--enforce-eager"]),
        ({"EAGER": "on"}, [*DEFAULT_FLAGS, "--enforce-eager"]),
        ({"EAGER": ""}, DEFAULT_FLAGS),
        ({"EAGER": "0"}, DEFAULT_FLAGS),
        ({"EAGER": "false"}, DEFAULT_FLAGS),
        ({"EAGER": "no"}, DEFAULT_FLAGS),
        (
            {"SERVED_MODEL_NAME": "qwen-coder"},
            ["--served-model-name", "qwen-coder", *DEFAULT_FLAGS[2:]],
        ),
        (
            {"MAX_MODEL_LEN": "32768"},
            [*DEFAULT_FLAGS[:2], "--max-model-len", "32768", *DEFAULT_FLAGS[2:]],
        ),
        (
            {"HOST": "127.0.0.1", "PORT": "9000"},
            [*DEFAULT_FLAGS[:2], "--host", "127.0.0.1", "--port", "9000", "--dtype", "auto"],
        ),
        (
            {"ADDITIONAL_ARGS": "--tensor-parallel-size = 2"},
            [*DEFAULT_FLAGS, "--tensor-parallel-size=2"],
        ),
        (
            {
                "GPUUTIL": "0.9",
                "DTYPE": "float16",
                "EAGER": "1",
                "MAX_MODEL_LEN": "16384",
                "ADDITIONAL_ARGS": "--pipeline-parallel-size 2",
            },
            [
                *DEFAULT_FLAGS[:2],
                "--max-model-len",
                "16384",
                *DEFAULT_FLAGS[2:6],
                "--gpu-memory-utilization",
                "0.9",
                "--dtype",
                "float16",
                "--enforce-eager",
                "--pipeline-parallel-size",
                "2",
            ],
        ),
    ],
)
def test_variables_become_vllm_flags(variables: dict[str, str], expected: list[str]) -> None:
    assert flags(plan(**variables)) == expected


@pytest.mark.parametrize(
    ("model", "served"),
    [
        ("/models/Qwen2.5-Coder-7B-Instruct/", "Qwen2.5-Coder-7B-Instruct"),
        ("/models/deepseek-coder.Q4_K_M.gguf", "deepseek-coder.Q4_K_M"),
    ],
)
def test_served_name_defaults_to_the_folder_name(model: str, served: str) -> None:
    argv = build_plan({"MODEL": model}, check_model=False).argv
    assert argv[argv.index("--served-model-name") + 1] == served


@pytest.mark.parametrize(
    ("environ", "kwargs", "expected_start"),
    [
        (
            {"KODIFY_VLLM_ENTRYPOINT": "module", "KODIFY_VLLM_PYTHON": "/venv/bin/python"},
            {},
            ["/venv/bin/python", "-m", API_SERVER_MODULE, "--model", MODEL],
        ),
        ({}, {"entrypoint": "module", "python": "/x/python3"}, ["/x/python3", "-m"]),
        ({}, {"entrypoint": "module"}, [sys.executable, "-m", API_SERVER_MODULE]),
        ({"KODIFY_VLLM_ENTRYPOINT": "module"}, {"entrypoint": "serve"}, ["vllm", "serve"]),
        ({"KODIFY_VLLM_ENTRYPOINT": "serve"}, {}, ["vllm", "serve", MODEL]),
    ],
)
def test_entrypoint_serve_or_module(
    environ: dict[str, str], kwargs: dict[str, Any], expected_start: list[str]
) -> None:
    launch = build_plan({"MODEL": MODEL, **environ}, check_model=False, **kwargs)
    assert launch.argv[: len(expected_start)] == expected_start
    assert launch.argv.count(MODEL) == 1
    assert launch.argv[-len(DEFAULT_FLAGS) :] == DEFAULT_FLAGS


@pytest.mark.parametrize(
    ("additional", "option", "value"),
    [
        ("--dtype half", "--dtype", "half"),
        ("--host=127.0.0.1", "--host=127.0.0.1", None),
        ("--port 9000", "--port", "9000"),
        ("--served-model-name a", "--served-model-name", "a"),
        ("--gpu_memory_utilization 0.5", "--gpu_memory_utilization", "0.5"),
    ],
)
def test_a_default_yields_to_additional_args(
    additional: str, option: str, value: str | None
) -> None:
    argv = plan(ADDITIONAL_ARGS=additional).argv
    name = option.split("=")[0].replace("_", "-")
    assert sum(1 for t in argv if t.split("=")[0].replace("_", "-") == name) == 1
    if value:
        assert argv[-2:] == [option, value]
    else:
        assert argv[-1] == option


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("priority", ["--scheduling-policy", "priority"]),
        ("Priority", ["--scheduling-policy", "priority"]),
        (" fcfs ", ["--scheduling-policy", "fcfs"]),
        ("", []),
    ],
)
def test_scheduling_policy_becomes_vllms_flag(policy: str, expected: list[str]) -> None:
    assert flags(plan(SCHEDULING_POLICY=policy)) == [*DEFAULT_FLAGS, *expected]
    assert "--scheduling-policy" not in plan().argv  # unset: vLLM's own (first come, first served)


@pytest.mark.parametrize("policy", ["lifo", "priority,fcfs", "1", "true"])
def test_an_unknown_scheduling_policy_is_refused(policy: str) -> None:
    (problem,) = problems({"MODEL": MODEL, "SCHEDULING_POLICY": policy})
    assert problem.startswith(f"SCHEDULING_POLICY={policy}: must be fcfs")
    assert "priority_scheduling" in problem  # where Kodify's half of the switch is


def test_scheduling_policy_is_set_once() -> None:
    both = {"MODEL": MODEL, "SCHEDULING_POLICY": "priority"}
    (problem,) = problems({**both, "ADDITIONAL_ARGS": "--scheduling-policy fcfs"})
    assert "sets --scheduling-policy, which SCHEDULING_POLICY already sets" in problem
    alone = plan(ADDITIONAL_ARGS="--scheduling-policy=priority").argv
    assert alone[-1] == "--scheduling-policy=priority"


# -- ADDITIONAL_ARGS -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("--tensor-parallel-size 2", ["--tensor-parallel-size", "2"]),
        ("--tensor-parallel-size = 2", ["--tensor-parallel-size=2"]),
        ("--tensor-parallel-size=2", ["--tensor-parallel-size=2"]),
        ("--tensor-parallel-size =2", ["--tensor-parallel-size=2"]),
        ("--tensor-parallel-size= 2", ["--tensor-parallel-size=2"]),
        (
            "--tensor-parallel-size = 2 --pipeline-parallel-size = 2",
            ["--tensor-parallel-size=2", "--pipeline-parallel-size=2"],
        ),
        ("  --pipeline-parallel-size   =   4  ", ["--pipeline-parallel-size=4"]),
        ("-tp 2 --enable-prefix-caching", ["-tp", "2", "--enable-prefix-caching"]),
        ("--seed -1", ["--seed", "-1"]),
        (
            "--override-generation-config '{\"temperature\": 0.2}'",
            ["--override-generation-config", '{"temperature": 0.2}'],
        ),
        ("'--x={\"a\": 1}'", ['--x={"a": 1}']),
    ],
)
def test_additional_args_forms(text: str, expected: list[str]) -> None:
    arguments, found, warnings = split_additional_args(text)
    assert (arguments, found, warnings) == (expected, [], [])


def test_additional_args_quoted_as_a_whole_are_unwrapped_with_a_warning() -> None:
    # docker run --env-file keeps the quotes of ADDITIONAL_ARGS="--tensor-parallel-size 2".
    arguments, found, warnings = split_additional_args('"--tensor-parallel-size = 2"')
    assert arguments == ["--tensor-parallel-size=2"]
    assert found == []
    assert len(warnings) == 1
    assert "quoted as a whole" in warnings[0]


# -- every error -----------------------------------------------------------------------------

TP = "--tensor-parallel-size"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "MODEL is not set: set it to the weights folder inside the container"),
        ({"MODEL": "  "}, "MODEL is not set"),
        (
            {"MODEL": MODEL, "SERVED_MODEL_NAME": "qwen coder"},
            "SERVED_MODEL_NAME=qwen coder: must be one name without spaces",
        ),
        (
            {"MODEL": MODEL, "MAX_MODEL_LEN": "32k"},
            "MAX_MODEL_LEN=32k: must be a whole number of 1 or more, e.g. 32768.",
        ),
        ({"MODEL": MODEL, "MAX_MODEL_LEN": "0"}, "MAX_MODEL_LEN=0: must be a whole number"),
        ({"MODEL": MODEL, "MAX_MODEL_LEN": "-5"}, "MAX_MODEL_LEN=-5: must be a whole number"),
        ({"MODEL": MODEL, "HOST": "a b"}, "HOST=a b: must be one address or host name"),
        (
            {"MODEL": MODEL, "PORT": "http"},
            "PORT=http: must be a whole number from 1 to 65535, e.g. 8000.",
        ),
        ({"MODEL": MODEL, "PORT": "0"}, "PORT=0: must be a whole number from 1 to 65535"),
        ({"MODEL": MODEL, "PORT": "65536"}, "PORT=65536: must be a whole number"),
        (
            {"MODEL": MODEL, "GPUUTIL": "1.5"},
            "GPUUTIL=1.5: must be a number above 0 and at most 1 (the share of GPU memory "
            "vLLM may use), e.g. 0.9.",
        ),
        ({"MODEL": MODEL, "GPUUTIL": "90"}, "GPUUTIL=90: must be a number above 0 and at most 1"),
        ({"MODEL": MODEL, "GPUUTIL": "90"}, "e.g. 0.9 for 90 %."),
        ({"MODEL": MODEL, "GPUUTIL": "0"}, "GPUUTIL=0: must be a number above 0"),
        ({"MODEL": MODEL, "GPUUTIL": "-0.5"}, "GPUUTIL=-0.5: must be a number above 0"),
        ({"MODEL": MODEL, "GPUUTIL": "abc"}, "GPUUTIL=abc: must be a number above 0"),
        ({"MODEL": MODEL, "GPUUTIL": "nan"}, "GPUUTIL=nan: must be a number above 0"),
        ({"MODEL": MODEL, "GPUUTIL": "inf"}, "GPUUTIL=inf: must be a number above 0"),
        ({"MODEL": MODEL, "GPUUTIL": "0,9,1"}, "GPUUTIL=0,9,1: must be a number above 0"),
        (
            {"MODEL": MODEL, "DTYPE": "int8"},
            "DTYPE=int8: must be one of auto, half, float16, bfloat16, float, float32 (the "
            "type of the model's weights); unset means auto.",
        ),
        ({"MODEL": MODEL, "DTYPE": "bf16"}, "write bfloat16 for bf16."),
        (
            {"MODEL": MODEL, "EAGER": "maybe"},
            "EAGER=maybe: must be 1 (or true, yes, on) to turn eager mode on, or empty",
        ),
        (
            {"MODEL": MODEL, "ADDITIONAL_ARGS": f"{TP} '2"},
            "ADDITIONAL_ARGS cannot be split into arguments (No closing quotation); "
            "check its quotes.",
        ),
        (
            {"MODEL": MODEL, "ADDITIONAL_ARGS": "= 2"},
            "ADDITIONAL_ARGS: a lone '=' must stand between a flag and its value",
        ),
        (
            {"MODEL": MODEL, "ADDITIONAL_ARGS": f"{TP} ="},
            "ADDITIONAL_ARGS: a lone '=' must stand between a flag and its value",
        ),
        (
            {"MODEL": MODEL, "ADDITIONAL_ARGS": f"{TP}="},
            f"ADDITIONAL_ARGS: {TP}= has no value after '='.",
        ),
        (
            {"MODEL": MODEL, "ADDITIONAL_ARGS": "tensor-parallel-size=2"},
            "ADDITIONAL_ARGS must start with a flag such as --tensor-parallel-size (two "
            "dashes), not tensor-parallel-size=2.",
        ),
        (
            {"MODEL": MODEL, "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments=True"},
            "PYTORCH_CUDA_ALLOC_CONF=expandable_segments=True: must be option:value pairs "
            "separated by commas, e.g. expandable_segments:True.",
        ),
        (
            {"MODEL": MODEL, "VLLM_WORKER_MULTIPROC_METHOD": "threads"},
            "VLLM_WORKER_MULTIPROC_METHOD=threads: must be one of spawn, fork, forkserver",
        ),
        (
            {"MODEL": MODEL, "KODIFY_VLLM_ENTRYPOINT": "docker"},
            "KODIFY_VLLM_ENTRYPOINT=docker: must be serve (vllm serve MODEL) or module",
        ),
    ],
)
def test_each_bad_value_is_one_clear_sentence(environ: dict[str, str], expected: str) -> None:
    found = problems(environ)
    assert len(found) == 1, found
    assert expected in found[0]
    assert found[0].endswith(".") and "\n" not in found[0]


@pytest.mark.parametrize(
    ("variable", "value", "additional", "option"),
    [
        ("DTYPE", "half", "--dtype float16", "--dtype"),
        ("GPUUTIL", "0.9", "--gpu_memory_utilization=0.8", "--gpu-memory-utilization"),
        ("EAGER", "1", "--enforce-eager", "--enforce-eager"),
        ("EAGER", "0", "--enforce-eager", "--enforce-eager"),
        ("EAGER", "1", "--no-enforce-eager", "--enforce-eager"),
        ("MAX_MODEL_LEN", "4096", "--max-model-len = 8192", "--max-model-len"),
        ("SERVED_MODEL_NAME", "a", "--served-model-name b", "--served-model-name"),
        ("HOST", "0.0.0.0", "--host 127.0.0.1", "--host"),
        ("PORT", "8000", "--port=8001", "--port"),
        ("VLLM_API_KEY", KEY, "--api-key other", "--api-key"),
        ("MODEL", MODEL, "--model /models/other", "--model"),
    ],
)
def test_additional_args_may_not_repeat_a_variable(
    variable: str, value: str, additional: str, option: str
) -> None:
    found = problems({"MODEL": MODEL, variable: value, "ADDITIONAL_ARGS": additional})
    assert found == [
        f"ADDITIONAL_ARGS sets {option}, which {variable} already sets; keep one of the two "
        f"(remove {option} from ADDITIONAL_ARGS or unset {variable})."
    ]
    assert KEY not in found[0]


def test_command_line_flags_are_checked_like_additional_args() -> None:
    found = problems({"MODEL": MODEL, "DTYPE": "half"}, extra_args=["--seed", "1", "--dtype=auto"])
    assert found == [
        "the command line sets --dtype, which DTYPE already sets; keep one of the two "
        "(remove --dtype from the command line or unset DTYPE)."
    ]
    argv = build_plan({"MODEL": MODEL}, check_model=False, extra_args=["--seed", "1"]).argv
    assert argv[-2:] == ["--seed", "1"]


def test_every_problem_is_listed_at_once(fake_exec: Exec) -> None:
    environ = minimal_env(
        GPUUTIL="1.5",
        DTYPE="fp16",
        EAGER="sometimes",
        PORT="x",
        MAX_MODEL_LEN="big",
        ADDITIONAL_ARGS="= 2",
        VLLM_WORKER_MULTIPROC_METHOD="thread",
    )
    out, err = StringIO(), StringIO()
    status = model_server.run(environ=environ, stdout=out, stderr=err)
    assert status == EXIT_BAD_CONFIG
    assert fake_exec.calls == []
    assert out.getvalue() == ""
    lines = err.getvalue().splitlines()
    assert len(lines) == 8
    assert all(line.startswith("error: ") and line.endswith(".") for line in lines)
    for name in ("MODEL", "GPUUTIL", "DTYPE", "EAGER", "PORT", "MAX_MODEL_LEN", "ADDITIONAL_ARGS"):
        assert any(line.startswith(f"error: {name}") for line in lines), name


# -- the model folder ------------------------------------------------------------------------


def test_model_must_be_an_existing_folder(tmp_path: Path, model_dir: Path) -> None:
    missing = tmp_path / "absent"
    found = problems({"MODEL": str(missing)}, check_model=True)
    assert found == [
        f"MODEL={missing}: no such folder in this container; mount the host's weights "
        "folder (e.g. /opt/mtsai/models) read-only and point MODEL at the model's folder "
        "inside it, e.g. /models/Qwen2.5-Coder-7B-Instruct."
    ]
    launch = build_plan({"MODEL": str(model_dir)})
    assert launch.argv[2] == str(model_dir) and launch.warnings == []
    # --skip-model-check previews the command on a machine without the weights.
    assert build_plan({"MODEL": str(missing)}, check_model=False).argv[2] == str(missing)


def test_model_folder_without_config_json_is_a_warning(tmp_path: Path) -> None:
    launch = build_plan({"MODEL": str(tmp_path)})
    assert len(launch.warnings) == 1
    assert "holds no config.json" in launch.warnings[0]


def test_a_gguf_file_is_a_model(tmp_path: Path) -> None:
    weights = tmp_path / "model.Q4_K_M.gguf"
    weights.write_bytes(b"GGUF")
    argv = build_plan({"MODEL": str(weights)}).argv
    assert argv[2:5] == [str(weights), "--served-model-name", "model.Q4_K_M"]


# -- vLLM's environment ----------------------------------------------------------------------


def test_environment_passes_through_with_offline_defaults() -> None:
    environ = {
        "MODEL": MODEL,
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
        "NVIDIA_VISIBLE_DEVICES": "0,1",
        "VLLM_WORKER_MULTIPROC_METHOD": "spawn",
        "VLLM_API_KEY": KEY,
        "SOMETHING_ELSE": "kept",
    }
    launch = build_plan(environ, check_model=False)
    assert launch.env == {**environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    assert launch.warnings == []
    # The key stays in the environment (vLLM reads VLLM_API_KEY) and off the command line.
    assert KEY not in " ".join(launch.argv) and "--api-key" not in launch.argv


def test_offline_defaults_yield_to_the_administrator() -> None:
    launch = plan(HF_HUB_OFFLINE="0", VLLM_NO_USAGE_STATS="0")
    assert launch.env["HF_HUB_OFFLINE"] == "0"
    assert launch.env["VLLM_NO_USAGE_STATS"] == "0"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", "VLLM_USE_V1=1: ignored and not passed to vLLM; current vLLM has only the V1 "
         "engine, so the variable changes nothing."),
        ("0", "VLLM_USE_V1=0: ignored and not passed to vLLM; the V0 engine it asks for no "
         "longer exists and vLLM runs V1."),
    ],
)  # fmt: skip
def test_vllm_use_v1_is_accepted_with_a_warning(value: str, expected: str) -> None:
    launch = plan(VLLM_USE_V1=value)
    assert launch.warnings == [expected]
    assert "VLLM_USE_V1" not in launch.env


def test_kubernetes_service_link_vllm_port_is_dropped() -> None:
    launch = plan(VLLM_PORT="tcp://10.0.0.7:8000")
    assert "VLLM_PORT" not in launch.env
    assert "set by Kubernetes for a Service named vllm" in launch.warnings[0]
    assert plan(VLLM_PORT="5555").env["VLLM_PORT"] == "5555"


@pytest.mark.parametrize(
    ("devices", "warned"),
    [
        ("all", False),
        ("none", False),
        ("0", False),
        ("0,1,3", False),
        ("GPU-8f2c6b1e-0000-1111-2222-333344445555,1", False),
        ("MIG-GPU-8f2c6b1e/1/0", False),
        ("/var/run/nvidia-container-devices", False),
        ("0, 1", True),
        ("0;1", True),
    ],
)
def test_nvidia_visible_devices_passes_and_odd_values_warn(devices: str, warned: bool) -> None:
    launch = plan(NVIDIA_VISIBLE_DEVICES=devices)
    assert launch.env["NVIDIA_VISIBLE_DEVICES"] == devices
    assert bool(launch.warnings) is warned


# -- keys are never shown --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["vllm", "serve", "m", "--api-key", KEY], "vllm serve m --api-key <hidden>"),
        (["vllm", "serve", "m", "--api-key", KEY, "k2", "--seed", "1"],
         "vllm serve m --api-key <hidden> <hidden> --seed 1"),
        (["vllm", "serve", "m", f"--api-key={KEY}"], "vllm serve m --api-key=<hidden>"),
        (["vllm", "serve", "m", f"--api_key={KEY}"], "vllm serve m --api_key=<hidden>"),
        (["vllm", "serve", "m", "--hf-token", KEY], "vllm serve m --hf-token <hidden>"),
        (["vllm", "serve", "/m x", "--max-num-batched-tokens", "8192"],
         "vllm serve '/m x' --max-num-batched-tokens 8192"),
    ],
)  # fmt: skip
def test_format_command_hides_keys(argv: list[str], shown: str) -> None:
    assert format_command(argv) == shown


def test_print_hides_every_key(fake_exec: Exec) -> None:
    environ = minimal_env(
        MODEL=MODEL,
        VLLM_API_KEY=KEY,
        HF_TOKEN=KEY + "-hf",
        ADDITIONAL_ARGS=f"--hf-token = {KEY}-arg --seed 3",
    )
    out, err = StringIO(), StringIO()
    status = model_server.run(
        print_only=True, check_model=False, environ=environ, stdout=out, stderr=err
    )
    assert status == EXIT_OK
    assert fake_exec.calls == []
    text = out.getvalue()
    assert KEY not in text + err.getvalue()
    assert "# VLLM_API_KEY=<hidden>" in text and "# HF_TOKEN=<hidden>" in text
    assert "# HF_HUB_OFFLINE=1" in text
    assert text.splitlines()[-1] == (
        f"vllm serve {MODEL} {' '.join(DEFAULT_FLAGS)} --hf-token=<hidden> --seed 3"
    )


def test_errors_never_quote_a_key() -> None:
    found = problems({"MODEL": MODEL, "ADDITIONAL_ARGS": f"--api-key '{KEY}"})
    assert len(found) == 1 and KEY not in found[0]


# -- starting vLLM ---------------------------------------------------------------------------


def test_exec_replaces_the_process_with_vllm(fake_exec: Exec) -> None:
    environ = minimal_env(MODEL=MODEL, GPUUTIL="0.9", VLLM_API_KEY=KEY, VLLM_USE_V1="1")
    err = StringIO()
    model_server.run(check_model=False, environ=environ, stdout=StringIO(), stderr=err)
    [(file, argv, env)] = fake_exec.calls
    assert file == "vllm"
    assert argv == ["vllm", "serve", MODEL, *DEFAULT_FLAGS[:6], "--gpu-memory-utilization",
                    "0.9", "--dtype", "auto"]  # fmt: skip
    assert env["VLLM_API_KEY"] == KEY and env["HF_HUB_OFFLINE"] == "1"
    assert "VLLM_USE_V1" not in env
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("warning: VLLM_USE_V1=1: ignored")
    assert lines[1] == f"starting vLLM: {format_command(argv)}"
    assert KEY not in err.getvalue()


def test_exec_module_entrypoint(fake_exec: Exec) -> None:
    environ = minimal_env(MODEL=MODEL, KODIFY_VLLM_ENTRYPOINT="module")
    model_server.run(check_model=False, environ=environ, python="/v/bin/python", stderr=StringIO())
    [(file, argv, _)] = fake_exec.calls
    assert file == "/v/bin/python"
    assert argv[:5] == ["/v/bin/python", "-m", API_SERVER_MODULE, "--model", MODEL]


@pytest.mark.parametrize(
    ("error", "entrypoint", "status", "message"),
    [
        (FileNotFoundError(2, "No such file"), "serve", EXIT_NOT_FOUND,
         "error: vllm was not found on PATH; is this the vLLM image? Where the vllm script is "
         "missing or broken (the CPU build), set KODIFY_VLLM_ENTRYPOINT=module."),
        (FileNotFoundError(2, "No such file"), "module", EXIT_NOT_FOUND,
         "set KODIFY_VLLM_PYTHON to the Python that has vLLM installed."),
        (PermissionError(13, "Permission denied"), "serve", EXIT_CANNOT_EXECUTE,
         "error: vllm cannot be executed (Permission denied)."),
    ],
)  # fmt: skip
def test_exec_failures_have_their_own_status(
    monkeypatch: pytest.MonkeyPatch, error: OSError, entrypoint: str, status: int, message: str
) -> None:
    monkeypatch.setattr(model_server.os, "execvpe", Exec(error))
    err = StringIO()
    result = model_server.run(
        check_model=False, entrypoint=entrypoint, environ=minimal_env(MODEL=MODEL), stderr=err
    )
    assert result == status
    assert message in err.getvalue().splitlines()[-1]


# -- the script, alone, in the vLLM image ----------------------------------------------------


def run_script(*args: str, env: dict[str, str], python: list[str] | None = None) -> Any:
    command = [*(python or [sys.executable]), str(SCRIPT), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, cwd=REPO)


def test_script_prints_the_command(model_dir: Path) -> None:
    env = minimal_env(MODEL=str(model_dir), EAGER="1", ADDITIONAL_ARGS=f"{TP} = 2")
    result = run_script("--print", env=env)
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.splitlines()[-1] == (
        f"vllm serve {model_dir} --served-model-name Qwen2.5-Coder-7B-Instruct --host 0.0.0.0 "
        f"--port 8000 --dtype auto --enforce-eager {TP}=2"
    )


def test_script_runs_on_the_standard_library_alone() -> None:
    # -I -S: no site-packages at all (neither the venv's nor the system's), as in an
    # image that has none of Kodify's dependencies.
    env = minimal_env(MODEL=MODEL, GPUUTIL="0,9", VLLM_API_KEY=KEY)
    result = run_script(
        "--dry-run", "--skip-model-check", env=env, python=[sys.executable, "-I", "-S"]
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert "--gpu-memory-utilization 0.9" in result.stdout
    assert KEY not in result.stdout + result.stderr

    probe = (
        "import runpy, sys\n"
        f"runpy.run_path({str(SCRIPT)!r}, run_name='probe')\n"
        "outside = sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)"
        f" - {{'__main__', 'probe', *{sorted(SIBLINGS)!r}}})\n"
        "print(outside)\n"
    )
    check = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe],
        env=minimal_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "[]"


@pytest.mark.parametrize("path", [SCRIPT, *SIBLINGS.values()], ids=lambda path: path.name)
def test_script_imports_only_the_standard_library(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import needs a package; the image has none"
            imported.add((node.module or "").split(".")[0])
    allowed = set(sys.stdlib_module_names) | set(SIBLINGS)
    assert imported <= allowed, imported - allowed


def test_script_refuses_bad_values_before_vllm_starts() -> None:
    # vllm is not on this PATH: the exit status proves vLLM was never looked for.
    result = run_script(env=minimal_env(MODEL=MODEL, GPUUTIL="1.5", PATH="/nonexistent"))
    assert result.returncode == EXIT_BAD_CONFIG
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: MODEL={MODEL}: no such folder in this container; mount the host's weights "
        "folder (e.g. /opt/mtsai/models) read-only and point MODEL at the model's folder "
        "inside it, e.g. /models/Qwen2.5-Coder-7B-Instruct.",
        "error: GPUUTIL=1.5: must be a number above 0 and at most 1 (the share of GPU memory "
        "vLLM may use), e.g. 0.9.",
    ]


def test_script_execs_vllm_from_path(tmp_path: Path, model_dir: Path) -> None:
    # A stand-in vllm on PATH proves the real exec: same process, argv and environment.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_vllm = bin_dir / "vllm"
    fake_vllm.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "env = os.environ\n"
        "print(os.getpid(), sys.argv[1:], env['HF_HUB_OFFLINE'], 'VLLM_USE_V1' in env)\n"
    )
    fake_vllm.chmod(0o755)
    env = minimal_env(MODEL=str(model_dir), VLLM_USE_V1="1", PATH=f"{bin_dir}:/usr/bin:/bin")
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    pid, rest = stdout.split(" ", 1)
    assert int(pid) == process.pid  # exec, not a child process: signals reach vLLM
    assert rest.strip() == f"{['serve', str(model_dir), *DEFAULT_FLAGS]} 1 False"
    assert "starting vLLM: vllm serve" in stderr


def test_script_help_lists_every_variable() -> None:
    result = run_script("--help", env=minimal_env(), python=[sys.executable, "-I", "-S"])
    assert result.returncode == 0
    for variable in VARIABLES:
        assert f"  {variable.name} " in result.stdout, variable.name


def test_every_variable_is_documented() -> None:
    docstring = model_server.__doc__ or ""
    readme = (REPO / "docker" / "model-server" / "README.md").read_text(encoding="utf-8")
    for variable in VARIABLES:
        assert f"\n{variable.name} " in docstring, f"{variable.name} is not in the docstring"
        assert f"| `{variable.name}` |" in readme, (
            f"{variable.name} is not in docker/model-server/README.md"
        )


# -- manage.py run_model_server --------------------------------------------------------------


def test_command_prints_the_command(clean_environ: pytest.MonkeyPatch, model_dir: Path) -> None:
    clean_environ.setenv("MODEL", str(model_dir))
    clean_environ.setenv("DTYPE", "bfloat16")
    clean_environ.setenv("VLLM_API_KEY", KEY)
    out, err = StringIO(), StringIO()
    call_command("run_model_server", "--print", "--", TP, "=", "2", stdout=out, stderr=err)
    text = out.getvalue()
    assert KEY not in text + err.getvalue()
    assert text.splitlines()[-1] == (
        f"vllm serve {model_dir} {' '.join(DEFAULT_FLAGS[:6])} --dtype bfloat16 {TP}=2"
    )


def test_command_exits_2_on_bad_values(clean_environ: pytest.MonkeyPatch, fake_exec: Exec) -> None:
    clean_environ.setenv("MODEL", MODEL)
    clean_environ.setenv("EAGER", "perhaps")
    err = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("run_model_server", "--skip-model-check", stdout=StringIO(), stderr=err)
    assert exited.value.code == EXIT_BAD_CONFIG
    assert err.getvalue().splitlines() == [
        "error: EAGER=perhaps: must be 1 (or true, yes, on) to turn eager mode on, or empty "
        "(or 0, false, no, off) to leave it off."
    ]
    assert fake_exec.calls == []


def test_command_execs_vllm(clean_environ: pytest.MonkeyPatch, fake_exec: Exec) -> None:
    clean_environ.setenv("MODEL", MODEL)
    call_command(
        "run_model_server", "--skip-model-check", "--entrypoint", "module", "--python", "py",
        stdout=StringIO(), stderr=StringIO(),
    )  # fmt: skip
    [(file, argv, env)] = fake_exec.calls
    assert file == "py"
    assert argv == ["py", "-m", API_SERVER_MODULE, "--model", MODEL, *DEFAULT_FLAGS]
    assert env["HF_HUB_OFFLINE"] == "1"


def test_manage_py_run_model_server(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in LAUNCHER_VARIABLES and not key.startswith(("KODIFY_", "VLLM_"))
    }
    env.update(MODEL=MODEL, GPUUTIL="2", KODIFY_DATA_DIR=str(tmp_path))
    command = [sys.executable, "manage.py", "run_model_server", "--skip-model-check"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == EXIT_BAD_CONFIG, result.stderr
    assert result.stderr.strip().endswith(
        "error: GPUUTIL=2: must be a number above 0 and at most 1 (the share of GPU memory "
        "vLLM may use), e.g. 0.9."
    )
    env["GPUUTIL"] = "0.5"
    result = subprocess.run(
        [*command, "--print"], env=env, capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert "--gpu-memory-utilization 0.5" in result.stdout.splitlines()[-1]
