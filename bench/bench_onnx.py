"""Serving on CPUs: the PyTorch pipeline in float32 against the ONNX exports (export_onnx.py) in float32 and int8.

A trained model answers real questions of articles it was not trained on, through the question-answering
pipeline, once per backend and batch size (windows per forward pass): questions per second, the share of answers
identical to PyTorch float32's (the answer text, and the decision to answer or abstain), and the official SQuAD 2.0
F1 against the gold answers (all, HasAns, NoAns). The model is measured as trained (with its sentence matcher, when
its null odds use it) and as derived without the matcher (the same weights, the matcher dropped), since the two
export differently, and the best span of every question with the decision set aside, whose agreement tests the
span logits themselves.

Usage (bench/results/onnx_serving.md has the full recipe):
    python bench/bench_onnx.py --model build/onnx_model --data build/onnx_heldout.json --threads 2
"""

import argparse
import dataclasses
import platform
import tempfile
import time
from pathlib import Path

from machine import cpu_name, load_average, use_repository_offline

use_repository_offline()

import onnxruntime  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForQuestionAnswering, AutoTokenizer  # noqa: E402

import export_onnx  # noqa: E402
from onnx_backend import SPAN_GRAPHS  # noqa: E402
from qa_pipeline import answer_questions, load_pipeline  # noqa: E402
from utils_qa import compute_squad_metrics, load_squad_file  # noqa: E402

# Each backend's name, and the precision of the export it answers from (None: the PyTorch model).
BACKENDS = {"PyTorch float32": None, "ONNX float32": "float32", "ONNX int8": "int8"}
# The best span of every question, the decision aside: its agreement tests the span logits themselves.
BEST_SPAN = {"handle_impossible_answer": False}


def read_questions(path: Path) -> list[dict]:
    """Return the questions of a SQuAD file (checked by the recipe's loader): id, question, context and gold answer
    texts ([] if impossible)."""
    return [{"id": example["id"], "question": example["question"], "context": example["context"],
             "gold": example["answers"]["text"]} for example in load_squad_file(path)]


def without_matcher(model_folder: Path, folder: Path) -> Path:
    """Save the model of `model_folder` without its sentence matcher into `folder` (null odds of reader and
    verifier alone, against the same threshold); return `folder`."""
    model = AutoModelForQuestionAnswering.from_pretrained(model_folder, dtype=torch.float32)
    model.config.answer_similarity = False
    model.sentence_matcher = None
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(model_folder).save_pretrained(folder)
    return folder


@dataclasses.dataclass
class Run:
    """One pipeline's answers to every question at one batch size, and its speed."""

    backend: str
    batch_size: int
    questions_per_second: float
    answers: list[dict]


def timed_answers(qa, questions: list[dict], batch_size: int, **settings) -> tuple[list[dict], float]:
    """Return the pipeline's answers to `questions` and the questions answered per second, in one run."""
    started = time.perf_counter()
    answers = answer_questions(qa, [q["question"] for q in questions], [q["context"] for q in questions],
                               batch_size=batch_size, **settings)
    return answers, len(questions) / (time.perf_counter() - started)


def agreement(reference: list[dict], answers: list[dict]) -> tuple[float, float]:
    """Return the shares (%) of answers whose text, and whose answer-or-abstain decision, equal the reference's."""
    same_text = sum(a["answer"] == b["answer"] for a, b in zip(reference, answers))
    same_decision = sum((a["answer"] == "") == (b["answer"] == "") for a, b in zip(reference, answers))
    return 100 * same_text / len(answers), 100 * same_decision / len(answers)


def squad_scores(questions: list[dict], answers: list[dict]) -> dict[str, float]:
    """Return the official SQuAD 2.0 F1, HasAns F1 and NoAns F1 of the answers."""
    scores = compute_squad_metrics({q["id"]: q["gold"] for q in questions},
                                   {q["id"]: a["answer"] for q, a in zip(questions, answers)})
    return {key: scores.get(key, float("nan")) for key in ("f1", "HasAns_f1", "NoAns_f1")}


def measure(model_folder: Path, export_folder: Path, questions: list[dict], batch_sizes: list[int],
            **settings) -> list[Run]:
    """Return one run per backend and batch size over all `questions`."""
    runs = []
    for backend, precision in BACKENDS.items():
        qa = load_pipeline(str(model_folder)) if precision is None else load_pipeline(str(export_folder), precision)
        for batch_size in batch_sizes:
            answers, speed = timed_answers(qa, questions, batch_size, **settings)
            runs.append(Run(backend, batch_size, speed, answers))
    return runs


def results_table(runs: list[Run], questions: list[dict]) -> str:
    """Return the markdown table of the runs, speed and agreement against the first (PyTorch float32) run."""
    baseline = {run.batch_size: run for run in runs if run.backend == runs[0].backend}
    lines = ["| backend | batch | questions/s | × PyTorch | same text % | same decision % | F1 | HasAns F1 | "
             "NoAns F1 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        reference = baseline[run.batch_size]
        text, decision = agreement(runs[0].answers, run.answers)
        scores = squad_scores(questions, run.answers)
        lines.append(f"| {run.backend} | {run.batch_size} | {run.questions_per_second:.1f} | "
                     f"{run.questions_per_second / reference.questions_per_second:.2f} | {text:.1f} | "
                     f"{decision:.1f} | {scores['f1']:.2f} | {scores['HasAns_f1']:.2f} | {scores['NoAns_f1']:.2f} |")
    return "\n".join(lines)


def sizes_line(export_folder: Path) -> str:
    """Return the sizes of the export's graphs in MB, and the int8 span graph's share of the float32 one."""
    sizes = {path.name: path.stat().st_size / 1e6 for path in sorted(export_folder.glob("*.onnx"))}
    share = 100 * sizes[SPAN_GRAPHS["int8"]] / sizes[SPAN_GRAPHS["float32"]]
    return ", ".join(f"{name} {size:.1f} MB" for name, size in sizes.items()) + f" (int8 span graph {share:.0f} %)"


def best_span_table(runs: list[Run], questions: list[dict]) -> str:
    """Return the markdown table of best-span runs: agreement with the first run, and HasAns F1."""
    lines = ["| backend | batch | same best span % | HasAns F1 of the best span |", "|---|---:|---:|---:|"]
    for run in runs:
        lines.append(f"| {run.backend} | {run.batch_size} | {agreement(runs[0].answers, run.answers)[0]:.1f} | "
                     f"{squad_scores(questions, run.answers)['HasAns_f1']:.2f} |")
    return "\n".join(lines)


def machine_line(threads: int) -> str:
    """Return the CPU with the vector instructions that decide int8 and bf16 speed, and the library versions."""
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").is_file() else set()
    shown = [flag for flag in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
             if flag in flags]
    return (f"{cpu_name()} ({', '.join(shown)}), {threads} threads, load {load_average()}, Python "
            f"{platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
            f"onnxruntime {onnxruntime.__version__}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="output folder of run_qa.py")
    parser.add_argument("--data", type=Path, required=True, help="SQuAD 2.0 JSON of questions the model did not see")
    parser.add_argument("--questions", type=int, help="answer only the first QUESTIONS questions (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16], help="windows per forward pass")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    questions = read_questions(args.data)[: args.questions]
    print(f"{len(questions)} questions of {args.data}; {machine_line(args.threads)}\n", flush=True)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        export_folder = work / "export"
        settings = export_onnx.export_folder_of(args.model, export_folder, export_onnx.QUANTIZATION)
        print(f"## As trained\n\nexport {settings['export_seconds']} s; {sizes_line(export_folder)}\n")
        print(results_table(measure(args.model, export_folder, questions, args.batch_sizes), questions) + "\n",
              flush=True)
        # The same span graph without the matcher: the best spans are the same as above (the matcher moves only
        # the null logits), and the answers as shipped check the export of a model without a matcher.
        model_folder = without_matcher(args.model, work / "no-matcher")
        export_folder = work / "export-no-matcher"
        export_onnx.export_folder_of(model_folder, export_folder, export_onnx.QUANTIZATION)
        largest = max(args.batch_sizes)
        print("## Without the sentence matcher\n\n" + results_table(
            measure(model_folder, export_folder, questions, [largest]), questions) + "\n", flush=True)
        print("## Best spans (the answer-or-abstain decision aside)\n\n" + best_span_table(
            measure(model_folder, export_folder, questions, [largest], **BEST_SPAN), questions))


if __name__ == "__main__":
    main()
