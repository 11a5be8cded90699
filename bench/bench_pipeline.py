"""Benchmark: questions per second of the recipe's question-answering pipeline and of transformers 4.x's own, on
real contexts, at batch sizes 1, 4 (the recipe's default) and 16, side by side in one run.

The reference is transformers 4.x's `QuestionAnsweringPipeline` (5.3 removed it) on a stock
`DistilBertForQuestionAnswering`, run by the Python of a separate environment (`--reference-python`; bench/README.md
says how to make one) with this same file as its worker, which is why the top-level imports are the standard
library's. All models are MiniLM-sized with random weights, which leave the time unchanged. The recipe's pipeline
runs on the recipe's default model, loaded as from the Hub (`trust_remote_code=True`), and, to tell the pipeline
apart from the model, on the stock model the reference runs; all with `handle_impossible_answer=True`. Each
pipeline's fastest of `--repeats` alternating runs is kept, by the clock and in processor time (which leaves out
waiting for a core on a shared machine).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_name, load_average, tokenizer_dir, use_repository_offline

ROOT = use_repository_offline()
DEFAULT_DATA = ROOT / "data" / "sample_dev.json"
MINILM_SIZE = dict(dim=384, n_layers=6, n_heads=12, hidden_dim=1536)
WARM_UP_QUESTIONS = 8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-python", type=Path,
                        help="Python of an environment with transformers 4.x and torch (default: the recipe's only)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="SQuAD file to ask from (volume: ../shared/data/squad_v2_sample_unlabeled.json)")
    parser.add_argument("--max-questions", type=int, default=300, help="questions drawn at random (seeded) from --data")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16], help="batch sizes to measure")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each pipeline; the fastest is kept")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 keeps the figures steady on a shared machine)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the question sample and of the models")
    parser.add_argument("--reference-worker", type=Path, help=argparse.SUPPRESS)  # internal: run the reference side
    args = parser.parse_args(argv)
    for name in ("max_questions", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.batch_sizes) < 1:
        parser.error("--batch-sizes must be at least 1")
    if args.reference_python is not None and not args.reference_python.is_file():
        parser.error(f"--reference-python {args.reference_python}: no such file")
    return args


def timed_answers(qa, questions: list[dict], batch_size: int) -> tuple[tuple[float, float], list[dict]]:
    """Return the seconds one call takes to answer every question, by the clock and in processor time, and its
    answers (one dict each)."""
    clock, processor = time.perf_counter(), time.process_time()
    answers = qa(question=[q["question"] for q in questions], context=[q["context"] for q in questions],
                 batch_size=batch_size, handle_impossible_answer=True)
    return (time.perf_counter() - clock, time.process_time() - processor), answers


def warm_up(qa, questions: list[dict], batch_sizes: list[int]) -> None:
    """Answer a few questions at every batch size, so that one-time costs stay out of the timings."""
    for batch_size in batch_sizes:
        timed_answers(qa, questions[:WARM_UP_QUESTIONS], batch_size)


# The reference: transformers 4.x's pipeline, in its own environment


def reference_worker(spec_file: Path) -> None:
    """Time transformers 4.x's pipeline as `spec_file` says and print the seconds and answers as JSON."""
    import torch
    import transformers
    from transformers import DistilBertForQuestionAnswering, DistilBertTokenizerFast, pipeline

    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    torch.set_num_threads(spec["threads"])
    questions = json.loads(Path(spec["questions"]).read_text(encoding="utf-8"))
    model = DistilBertForQuestionAnswering.from_pretrained(spec["model"])
    tokenizer = DistilBertTokenizerFast.from_pretrained(spec["tokenizer"])
    qa = pipeline("question-answering", model=model, tokenizer=tokenizer, device=-1)
    warm_up(qa, questions, spec["batch_sizes"])
    results = {"version": transformers.__version__, "seconds": {}, "answers": {}}
    for batch_size in spec["batch_sizes"]:
        seconds, answers = timed_answers(qa, questions, batch_size)
        results["seconds"][str(batch_size)], results["answers"][str(batch_size)] = seconds, answers
    print(json.dumps(results))


def run_reference(python: Path, spec: dict, folder: Path) -> dict:
    """Return what one reference worker measured: `{"version", "seconds": {batch size: [clock, processor]},
    "answers": {batch size: answers}}`."""
    spec_file = folder / "reference.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    threads = str(spec["threads"])
    environment = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    finished = subprocess.run([str(python), __file__, "--reference-worker", str(spec_file)], capture_output=True,
                              text=True, env=environment, check=False)
    if finished.returncode != 0:
        raise SystemExit(f"the reference worker failed:\n{finished.stderr[-3000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


# The recipe's side


def sample_questions(data: Path, max_questions: int, seed: int) -> tuple[list[dict], int]:
    """Return `max_questions` questions of `data` drawn at random, as `{"question", "context"}`, and the count."""
    import numpy as np

    from utils_qa import load_squad_file

    examples = load_squad_file(data)
    rows = np.random.default_rng(seed).choice(len(examples), size=min(max_questions, len(examples)), replace=False)
    chosen = examples.select(np.sort(rows))
    return [{"question": q, "context": c} for q, c in zip(chosen["question"], chosen["context"])], len(examples)


def save_models(folder: Path, tokenizer_folder: Path, seed: int) -> tuple[Path, Path]:
    """Save the recipe's default model and a stock DistilBERT QA model, both MiniLM-sized and random; return their
    folders."""
    import torch
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForQuestionAnswering

    import run_qa
    from modeling_pointer_distilbert import PointerDistilBertConfig, PointerDistilBertForQuestionAnswering

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
    defaults = run_qa.ModelArguments(model_name_or_path="unused")
    head = {name: getattr(defaults, name) for name in ("qa_head", "answer_verifier", "verifier_standardization")}
    torch.manual_seed(seed)
    recipe = PointerDistilBertForQuestionAnswering(PointerDistilBertConfig(**MINILM_SIZE, **head))
    torch.manual_seed(seed)
    stock = DistilBertForQuestionAnswering(DistilBertConfig(**MINILM_SIZE))
    for model, name in ((recipe, "recipe"), (stock, "stock")):
        model.save_pretrained(folder / name)
        tokenizer.save_pretrained(folder / name)
    return folder / "recipe", folder / "stock"


def recipe_pipelines(recipe_dir: Path, stock_dir: Path) -> dict:
    """Return the recipe's pipeline on the recipe's model (loaded as remote code, as from the Hub) and on the stock
    model."""
    from transformers import AutoTokenizer, DistilBertForQuestionAnswering, pipeline

    from qa_pipeline import PointerQuestionAnsweringPipeline

    return {
        ("recipe", "pointer + verifier"): pipeline("question-answering", model=str(recipe_dir), trust_remote_code=True,
                                                   device=-1),
        ("recipe", "stock DistilBERT"): PointerQuestionAnsweringPipeline(
            model=DistilBertForQuestionAnswering.from_pretrained(stock_dir),
            tokenizer=AutoTokenizer.from_pretrained(stock_dir), device=-1),
    }


# Report


def fastest_of(seconds, before) -> tuple[float, float]:
    """Return the faster clock time and the smaller processor time of a run and the best one before (or None)."""
    return tuple(seconds) if before is None else (min(seconds[0], before[0]), min(seconds[1], before[1]))


def spans_of(answers: list[dict]) -> list[tuple]:
    """Return each answer's text and character offsets (scores differ in the last digits between batch sizes)."""
    return [(answer["answer"], answer["start"], answer["end"]) for answer in answers]


def spans_agree(ours: list[dict], theirs: list[dict]) -> tuple[int, int]:
    """Return how many questions both pipelines answer with a span, and how many of those with the same span."""
    both = [(a, b) for a, b in zip(ours, theirs) if a["answer"] and b["answer"]]
    return sum((a["start"], a["end"]) == (b["start"], b["end"]) for a, b in both), len(both)


def print_report(args, fastest: dict, answers: dict, reference_version: str | None, num_questions: int,
                 available: int) -> None:
    """Print the setting, the markdown table of questions per second, and the answer checks."""
    import torch
    import transformers

    print(f"{num_questions} questions drawn from {available:,} of `{args.data.name}`, handle_impossible_answer=True, "
          f"{args.threads} torch thread(s), best of {args.repeats}; {cpu_name()}, load average {load_average()}, "
          f"Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__} "
          f"(reference: {reference_version or 'not run'}).\n")
    best = [max((num_questions / seconds[kind] for (side, _, _), seconds in fastest.items() if side == "transformers"),
                default=None) for kind in (0, 1)]  # the reference at its best, by the clock and in processor time
    print("| pipeline | model | batch size | questions/s | vs transformers 4.x at its best | questions per processor "
          "second | vs transformers 4.x at its best |")
    print("|---|---|---|---|---|---|---|")
    for (side, model, batch_size), seconds in fastest.items():
        cells = []
        for kind in (0, 1):
            rate = num_questions / seconds[kind]
            cells += [f"{rate:.1f}", f"{rate / best[kind]:.2f}x" if best[kind] else "n/a"]
        print(f"| {side} | {model} | {batch_size} | {' | '.join(cells)} |")
    print()
    for (side, model), by_size in answers.items():
        if side == "recipe":
            first, *others = (spans_of(found) for found in by_size.values())
            same = all(found == first for found in others)
            print(f"- {side} / {model}: the same answers (texts and offsets) at batch sizes "
                  f"{', '.join(map(str, by_size))}: {same}")
    if reference_version:
        ours = next(iter(answers["recipe", "stock DistilBERT"].values()))
        theirs = next(iter(answers["transformers", "stock DistilBERT"].values()))
        agree, both = spans_agree(ours, theirs)
        print(f"- where both answer the stock model's questions with a span (not \"\"), the same span: {agree} / "
              f"{both} (the choice between a span and \"\" differs by design: null odds against a threshold here)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.reference_worker is not None:
        reference_worker(args.reference_worker)
        return

    import torch

    torch.set_num_threads(args.threads)
    tokenizer_folder = tokenizer_dir()
    questions, available = sample_questions(args.data, args.max_questions, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        recipe_dir, stock_dir = save_models(folder, tokenizer_folder, args.seed)
        pipelines = recipe_pipelines(recipe_dir, stock_dir)
        for qa in pipelines.values():
            warm_up(qa, questions, args.batch_sizes)
        (folder / "questions.json").write_text(json.dumps(questions), encoding="utf-8")
        spec = {"threads": args.threads, "questions": str(folder / "questions.json"), "model": str(stock_dir),
                "tokenizer": str(tokenizer_folder), "batch_sizes": args.batch_sizes}
        fastest, answers, reference_version = {}, {}, None
        for _ in range(args.repeats):
            for (side, model), qa in pipelines.items():
                for batch_size in args.batch_sizes:
                    seconds, found = timed_answers(qa, questions, batch_size)
                    key = (side, model, batch_size)
                    fastest[key] = fastest_of(seconds, fastest.get(key))
                    answers.setdefault((side, model), {})[batch_size] = found
            if args.reference_python is not None:
                measured = run_reference(args.reference_python, spec, folder)
                reference_version = f"transformers {measured['version']}"
                for batch_size in args.batch_sizes:
                    key = ("transformers", "stock DistilBERT", batch_size)
                    fastest[key] = fastest_of(measured["seconds"][str(batch_size)], fastest.get(key))
                    answers.setdefault(key[:2], {})[batch_size] = measured["answers"][str(batch_size)]
    print_report(args, fastest, answers, reference_version, len(questions), available)


if __name__ == "__main__":
    sys.exit(main())
