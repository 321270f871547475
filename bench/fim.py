"""``python -m bench.fim``: the CPU cost of a Tabby completion's pre- and post-processing.

No server and no model: one request's whole path through the gateway's FIM code, timed in
this process over many iterations.  The workload is what a Tabby client sends from a big
file: a **20 KB prefix** of real-looking code, a suffix of a few KB and **10 snippets**
(4 declarations, 3 snippets of changed files, 3 of recently opened files, a few hundred
characters each), with the model's answer a few lines of code, a stop word, and junk the
model wrote past it.  Each of the five languages gets its own code; the CRLF variant is
the same file with Windows line endings.

Preprocessing is what happens between the request's bytes and the upstream's:
``decode_json`` → ``parse_completion`` → ``FimCompletion`` → ``set_model`` →
``use_profile(qwen)`` → ``upstream_body()``.  Post-processing is from the upstream's
bytes to the client's: ``answer(upstream_json)`` (which runs ``postprocess``) and the
``orjson.dumps`` of the answer.  The issue's budget is 0.5 ms for both together.

This module is the command line; the work is in ``bench.fim_workload`` (the requests),
``bench.fim_code`` (the code they are made of, one module per language) and
``bench.fim_timing`` (the timing, the verdict and its table).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import orjson

from bench.fim_timing import measure_all, one_request
from bench.fim_workload import LANGUAGES, build_workload, qwen_profile


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--languages", nargs="+", choices=LANGUAGES, default=list(LANGUAGES))
    parser.add_argument("--no-crlf", action="store_true", help="skip the CRLF variants")
    parser.add_argument("--json", type=argparse.FileType("w"), help="also write the record here")
    parser.add_argument(
        "--show", choices=LANGUAGES, help="print that language's prompt and answer, then stop"
    )
    args = parser.parse_args(argv)
    if args.show:
        workload = build_workload(args.show)
        _, body, answer = one_request(workload, qwen_profile())
        print(orjson.loads(body)["prompt"])
        print("---- stop:", orjson.loads(body)["stop"])
        print("---- answer:")
        print(orjson.loads(answer)["choices"][0]["text"])
        return 0
    record = measure_all(
        iterations=args.iterations,
        warmup=args.warmup,
        languages=args.languages,
        crlf=not args.no_crlf,
    )
    if args.json:
        args.json.write(orjson.dumps(record, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
