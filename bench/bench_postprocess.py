"""Benchmark: vectorised `select_answers` against the per-feature double loop over top-k start x end candidates.

Both read the same examples, evaluation features (real tokenizer, real SQuAD 2.0 contexts) and random logits with
a fixed seed, and produce answers, null odds and n-best lists. Prints a markdown table with each time, the
speed-up, and how many examples get the identical answer and n-best list.
The default data is the repository's real SQuAD 2.0 article (208 questions), enough to check the two agree; the
timings in bench/README.md are for 5,915 questions, `--data ../shared/data/squad_v2_sample_unlabeled.json`.
"""

import functools
import gc
import os
import platform
import time

import numpy as np
from machine import cpu_name, load_average, tokenizer_dir, use_repository_offline, window_parser

use_repository_offline()

import datasets  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from utils_qa import QAPredictions, load_squad_file, prepare_eval_features, select_answers  # noqa: E402


def loop_select_answers(examples, features, predictions, version_2_with_negative=True, n_best_size=20,
                        max_answer_length=30, null_score_diff_threshold=0.0) -> QAPredictions:
    """Return answers the classic way, in `select_answers`' place (SQuAD 2.0 only; bench_speed.py's classic side): a
    Python double loop over the candidates `select_answers` uses, the `n_best_size` best start and end tokens among
    each window's context tokens, with the columns read into Python lists once."""
    start_logits, end_logits = predictions
    offset_mappings = features["offset_mapping"][:]
    features_of_example = {}
    for feature_index, example_id in enumerate(features["example_id"][:]):
        features_of_example.setdefault(example_id, []).append(feature_index)
    answers, nbest, null_odds, non_null = {}, {}, {}, {}
    for example_id, context in zip(examples["id"][:], examples["context"][:]):
        candidates, null = [], None
        for feature_index in features_of_example[example_id]:
            offsets = offset_mappings[feature_index]
            starts, ends = start_logits[feature_index].tolist(), end_logits[feature_index].tolist()
            if null is None or starts[0] + ends[0] < null["score"]:
                null = {"score": starts[0] + ends[0], "start_logit": starts[0], "end_logit": ends[0],
                        "start": 0, "end": 0}
            context_tokens = [token for token, pair in enumerate(offsets) if pair is not None]
            best_starts = sorted(context_tokens, key=starts.__getitem__, reverse=True)[:n_best_size]
            best_ends = sorted(context_tokens, key=ends.__getitem__, reverse=True)[:n_best_size]
            for start in best_starts:
                for end in best_ends:
                    if end < start or end - start + 1 > max_answer_length:
                        continue
                    candidates.append(
                        {"score": starts[start] + ends[end], "start_logit": starts[start], "end_logit": ends[end],
                         "start": offsets[start][0], "end": offsets[end][1]}
                    )
        candidates = sorted(candidates, key=lambda candidate: candidate["score"], reverse=True)[:n_best_size]
        best_score, null_score = (candidates[0]["score"] if candidates else None), null["score"]
        entries = sorted(candidates + [null], key=lambda candidate: candidate["score"], reverse=True)
        scores = np.array([entry.pop("score") for entry in entries])
        probabilities = np.exp(scores - scores.max())
        for entry, probability in zip(entries, (probabilities / probabilities.sum()).tolist()):
            entry["text"] = context[entry["start"] : entry["end"]]
            entry["probability"] = probability
        null_odds[example_id] = null_score - best_score if candidates else 1e9
        no_answer = not candidates or null_odds[example_id] > null_score_diff_threshold
        non_null[example_id] = context[candidates[0]["start"] : candidates[0]["end"]] if candidates else ""
        answers[example_id] = "" if no_answer else non_null[example_id]
        nbest[example_id] = entries
    return QAPredictions(answers, nbest, null_odds, non_null)


def read_every_nbest_list(result):
    """Return the n-best lists as a plain dict, which builds every list (they are made when read)."""
    return result, dict(result.nbest)


def best_of(function, repeats, collect_garbage):
    """Return `(result, best wall time in seconds)` over `repeats` calls, each after collecting the garbage of the
    last; with `collect_garbage` False the collector is also off while the clock runs (as `timeit` does)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        result = None
        gc.collect()
        if not collect_garbage:
            gc.disable()
        started = time.perf_counter()
        result = function()
        elapsed = time.perf_counter() - started
        gc.enable()
        best = min(best, elapsed)
    return result, best


def same_entries(ours, theirs):
    """True when two n-best lists hold the same spans with the same probabilities, in the same order."""
    return len(ours) == len(theirs) and all(
        (a["text"], a["start"], a["end"]) == (b["text"], b["start"], b["end"])
        and abs(a["probability"] - b["probability"]) < 1e-9
        for a, b in zip(ours, theirs)
    )


def main() -> None:
    parser = window_parser(__doc__.splitlines()[0], "SQuAD file to take questions from")
    parser.add_argument("--n-best-size", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per implementation; the best is kept")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random logits")
    parser.add_argument("--no-gc", action="store_true", help="switch the garbage collector off while timing")
    args = parser.parse_args()

    datasets.disable_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(args.tokenizer))
    examples = load_squad_file(args.data)
    features = examples.map(
        functools.partial(prepare_eval_features, tokenizer=tokenizer, max_seq_length=args.max_seq_length,
                          doc_stride=args.doc_stride),
        batched=True, remove_columns=examples.column_names,
    )
    rng = np.random.default_rng(args.seed)
    shape = (len(features), args.max_seq_length)
    logits = (rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32))
    select = functools.partial(select_answers, examples, features, logits, version_2_with_negative=True,
                               n_best_size=args.n_best_size)
    collect = not args.no_gc

    loop, loop_time = best_of(
        lambda: loop_select_answers(examples, features, logits, n_best_size=args.n_best_size), args.repeats, collect
    )
    _, conversion_time = best_of(lambda: features["offset_mapping"][:], args.repeats, collect)
    _, answers_time = best_of(select, args.repeats, collect)
    (result, nbest), nbest_time = best_of(lambda: read_every_nbest_list(select()), args.repeats, collect)

    total = len(loop.answers)
    identical = sum(result.answers[key] == loop.answers[key] for key in loop.answers)
    identical_nbest = sum(same_entries(nbest[key], loop.nbest[key]) for key in loop.nbest)
    odds_gap = max(abs(result.null_odds[key] - loop.null_odds[key]) for key in loop.null_odds)

    print(f"Post-processing {total:,} questions / {len(features):,} windows of up to {args.max_seq_length} tokens "
          f"from `{args.data.name}` (SQuAD 2.0, n_best_size={args.n_best_size}, random logits, seed {args.seed}).")
    print(f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs (load average {load_average()}), one thread; "
          f"numpy {np.__version__}, Python {platform.python_version()}. Best of {args.repeats}; garbage collector "
          f"{'off' if args.no_gc else 'on, as in a training run'}.\n")
    print("| implementation | time (ms) | speed-up | identical answers | identical n-best lists |")
    print("|---|---:|---:|---:|---:|")
    print(f"| per-feature double loop (top-{args.n_best_size} starts x ends) | {1000 * loop_time:.0f} | 1.0x | "
          f"{total:,} / {total:,} | {total:,} / {total:,} |")
    print(f"| `select_answers`: answers + null odds | {1000 * answers_time:.0f} | "
          f"{loop_time / answers_time:.1f}x | {identical:,} / {total:,} | (built when read) |")
    print(f"| `select_answers` + reading every n-best list | {1000 * nbest_time:.0f} | "
          f"{loop_time / nbest_time:.1f}x | {identical:,} / {total:,} | {identical_nbest:,} / {total:,} |")
    print(f"\nReading `offset_mapping` into Python lists alone, a step the loop needs and `select_answers` skips "
          f"(it reads the Arrow buffers), takes {1000 * conversion_time:.0f} ms here.")
    print(f"Largest null-odds difference between the two implementations: {odds_gap:.1e}")


if __name__ == "__main__":
    main()
