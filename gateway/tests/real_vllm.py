"""A real vLLM on the CPU, for opt-in tests: a tiny random Qwen2 model and a server to run it.

No model can be downloaded on the machines that run the tests, so the model is built here:
a byte-level BPE tokenizer trained on Python's own standard library, the Qwen special
tokens and chat template, and a ``Qwen2ForCausalLM`` with random weights.  Its output is
gibberish, but vLLM serves it exactly as it would a real Qwen (same architecture, same
tokenizer machinery), which is what a test of the gateway needs.

Build it with the python of a venv that has vLLM (torch, transformers and tokenizers come
with it)::

    /opt/vllm-venv/bin/python -m gateway.tests.real_vllm build /tmp/tiny-qwen

This module must stay importable from the project's venv, which has none of those: they
are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SERVED_MODEL_NAME = "tiny-qwen"
MAX_MODEL_LEN = 512
VOCAB_SIZE = 4096

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)

# Qwen2's ChatML template, without the default system prompt (which only costs tokens here).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# A few MB of text is plenty for a 4k vocabulary, and keeps training to seconds.
_TRAINING_BYTES = 4_000_000

# The CPU backend reserves this many GiB for the KV cache; vLLM's default is far more
# than a 2-layer model with 512 positions needs.
VLLM_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_TARGET_DEVICE": "cpu",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}


def _training_files() -> list[str]:
    """Standard-library sources, in a stable order so every build has the same vocabulary."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files: list[str] = []
    total = 0
    for path in sorted(stdlib.glob("*.py")):
        files.append(str(path))
        total += path.stat().st_size
        if total >= _TRAINING_BYTES:
            break
    if not files:
        raise RuntimeError(f"no Python sources under {stdlib} to train a tokenizer on")
    return files


def build_tiny_qwen(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random Qwen2 model and its tokenizer to ``path`` (``save_pretrained``)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        # Every byte must be in the vocabulary, or text outside the training set is lost.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train(_training_files(), trainer)

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=[t for t in QWEN_SPECIAL_TOKENS if t not in ("<|im_end|>",)],
        model_max_length=MAX_MODEL_LEN,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,  # head size 32: vLLM's CPU attention needs at least that
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=fast.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=fast.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=fast.convert_tokens_to_ids("<|endoftext|>"),
    )
    model = Qwen2ForCausalLM(config).to(torch.float32)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


# -- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class VLLMServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    api_key: str | None = None

    def log_tail(self, size: int = 8000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM, then SIGKILL for the whole session if vLLM does not exit in time.

        vLLM runs its engine in a child process; it stops that child itself on SIGTERM, and
        the process group (vLLM was started in a new session) catches any it leaves behind.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(10)


def _get(url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start_vllm(
    python: str,
    model_dir: str | Path,
    log_path: str | Path,
    *,
    api_key: str | None = None,
    port: int | None = None,
    startup_timeout: float = 600.0,
    max_model_len: int = MAX_MODEL_LEN,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> VLLMServer:
    """Start vLLM's OpenAI server on 127.0.0.1 and return once ``/health`` answers 200.

    ``extra_args``: more vLLM flags (``--scheduling-policy priority``…); ``extra_env``:
    variables for vLLM besides :data:`VLLM_ENV` (``VLLM_SERVER_DEV_MODE``…)."""
    port = port or free_port()
    command = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        str(max_model_len),
        "--served-model-name",
        SERVED_MODEL_NAME,
        "--enforce-eager",
    ]
    if api_key:
        command += ["--api-key", api_key]
    command += extra_args
    # vLLM also reads VLLM_API_KEY and friends: only what is set here may steer it.
    # Not Kodify's own metrics folder either: vLLM uses prometheus-client too, and would
    # write its files there (or fail to, when the folder is gone).
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("VLLM_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(VLLM_ENV)
    env.update(extra_env or {})
    log = Path(log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    server = VLLMServer(
        url=f"http://127.0.0.1:{port}", process=process, log_path=log, api_key=api_key
    )
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError(
                f"vLLM exited with {process.returncode} while starting:\n{server.log_tail()}"
            )
        try:
            status, _ = _get(server.url + "/health", {}, timeout=5)
        except OSError:
            status = 0  # not listening yet
        if status == 200:
            return server
        time.sleep(0.5)  # a poll interval, not a synchronisation: the deadline bounds it
    server.stop()
    raise RuntimeError(
        f"vLLM did not become healthy within {startup_timeout:g} s:\n{server.log_tail()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.tests.real_vllm")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the tiny random Qwen2 model into DIR")
    build.add_argument("dir")
    serve = commands.add_parser("serve", help="build if needed, then serve DIR until Ctrl-C")
    serve.add_argument("dir")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--api-key")
    args = parser.parse_args(argv)
    if args.command == "build":
        started = time.monotonic()
        out = build_tiny_qwen(args.dir)
        print(f"built {out} in {time.monotonic() - started:.1f} s")
        return 0
    if not (Path(args.dir) / "config.json").exists():
        build_tiny_qwen(args.dir)
    server = start_vllm(
        sys.executable,
        args.dir,
        Path(args.dir) / "vllm.log",
        api_key=args.api_key,
        port=args.port,
    )
    print(f"vLLM serves {SERVED_MODEL_NAME} at {server.url} (log: {server.log_path})", flush=True)
    # A background job ignores SIGINT, so SIGTERM must also reach the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
