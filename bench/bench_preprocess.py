"""Benchmark: preprocessing throughput of `prepare_train_features` and `prepare_eval_features` through `Dataset.map`.

Runs both on real SQuAD 2.0 questions with the real uncased tokenizer, with 1 and 2 processes, and prints a
markdown table of examples/s and windows/s (best of `--repeats`, process start-up included for num_proc > 1).
The default data is the repository's real SQuAD 2.0 article (208 questions); at that size process start-up
dominates the num_proc 2 row. The throughputs in bench/README.md are for 3,708 questions,
`--data ../shared/data/squad_v2_sample_train.json`.
"""

import functools
import os
import platform
import time

from machine import cpu_name, load_average, tokenizer_dir, use_repository_offline, window_parser

use_repository_offline()

import datasets  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from bench_postprocess import best_of  # noqa: E402
from utils_qa import align_answers, load_squad_file, prepare_eval_features, prepare_train_features  # noqa: E402


def timed_map(examples, function, num_proc, repeats):
    """Return `(windows, best seconds)` of mapping `function` over `examples`, cache off."""
    mapping = functools.partial(examples.map, function, batched=True, num_proc=None if num_proc == 1 else num_proc,
                                remove_columns=examples.column_names, load_from_cache_file=False, keep_in_memory=True)
    features, seconds = best_of(mapping, repeats, collect_garbage=True)
    return len(features), seconds


def main() -> None:
    parser = window_parser(__doc__.splitlines()[0], "SQuAD file with answers")
    parser.add_argument("--num-proc", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting; the best is kept")
    args = parser.parse_args()

    datasets.disable_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(args.tokenizer))
    settings = {"tokenizer": tokenizer, "max_seq_length": args.max_seq_length, "doc_stride": args.doc_stride}
    examples = load_squad_file(args.data)
    started = time.perf_counter()
    aligned, report = align_answers(examples)
    align_seconds = time.perf_counter() - started

    rows = []
    for name, function, data in (
        ("training features", functools.partial(prepare_train_features, **settings), aligned),
        ("evaluation features", functools.partial(prepare_eval_features, **settings), examples),
    ):
        for num_proc in args.num_proc:
            windows, seconds = timed_map(data, function, num_proc, args.repeats)
            rows.append((name, num_proc, len(data), windows, seconds))

    print(f"Preprocessing {len(examples):,} questions from `{args.data.name}` (max_seq_length={args.max_seq_length}, "
          f"doc_stride={args.doc_stride}), best of {args.repeats}, cache off.")
    print(f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs (load average {load_average()}); "
          "one tokenizer thread per process "
          f"(TOKENIZERS_PARALLELISM={os.environ['TOKENIZERS_PARALLELISM']}); Python {platform.python_version()}.\n")
    print("| step | num_proc | examples | windows | time (s) | examples/s | windows/s | vs num_proc 1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    single = {name: seconds for name, num_proc, _, _, seconds in rows if num_proc == args.num_proc[0]}
    for name, num_proc, count, windows, seconds in rows:
        print(f"| {name} | {num_proc} | {count:,} | {windows:,} | {seconds:.2f} | {count / seconds:,.0f} | "
              f"{windows / seconds:,.0f} | {single[name] / seconds:.2f}x |")
    print(f"\n`align_answers` checked {report.checked:,} answers ({report.realigned} realigned, "
          f"{report.unalignable} unalignable) in {align_seconds:.2f} s.")


if __name__ == "__main__":
    main()
