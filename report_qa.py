"""Human-facing outputs of a run: training-curve and no-answer figures, and the model card's usage section."""

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: runs on servers without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from huggingface_hub import EvalResult, ModelCardData  # noqa: E402

from utils_qa import null_odds_auc  # noqa: E402

TRAINING_FIGURE = "training_curves.png"
NO_ANSWER_FIGURE = "no_answer_analysis.png"


def curves_from_log_history(log_history: list[dict]) -> dict[str, tuple[list[float], list[float]]]:
    """Return `{name: (steps, values)}` for the training loss and the evaluation EM/F1 logged during training."""
    wanted = {"loss": "training loss", "eval_exact": "eval EM", "eval_exact_match": "eval EM", "eval_f1": "eval F1"}
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for entry in log_history:
        for key, name in wanted.items():
            if key in entry and "step" in entry:
                steps, values = curves.setdefault(name, ([], []))
                steps.append(entry["step"])
                values.append(entry[key])
    return curves


def no_answer_curve(has_answer: np.ndarray, null_odds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return precision, recall and thresholds of "no answer" detection as the null-odds threshold sweeps.

    An example is predicted unanswerable when its null odds exceed the threshold; unanswerable examples are
    the positives. Thresholds are the distinct null odds, highest first.
    """
    order = np.argsort(-null_odds, kind="stable")
    positives = ~has_answer[order]
    true_positives = np.cumsum(positives)
    predicted = np.arange(1, len(order) + 1)
    precision = true_positives / predicted
    recall = true_positives / max(int(positives.sum()), 1)
    return precision, recall, null_odds[order]


def plot_training_curves(log_history: list[dict], path: Path) -> Path | None:
    """Draw training loss and evaluation EM/F1 against steps; None when nothing was logged."""
    curves = curves_from_log_history(log_history)
    if not curves:
        return None
    figure, loss_axis = plt.subplots(figsize=(8, 4.5))
    if "training loss" in curves:
        loss_axis.plot(*curves["training loss"], color="tab:blue", label="training loss")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("training loss")
    score_axis = loss_axis.twinx()
    for name, color in (("eval EM", "tab:orange"), ("eval F1", "tab:green")):
        if name in curves:
            score_axis.plot(*curves[name], marker="o", color=color, label=name)
    score_axis.set_ylabel("score (0-100)")
    handles = loss_axis.get_legend_handles_labels()[0] + score_axis.get_legend_handles_labels()[0]
    loss_axis.legend(handles, [h.get_label() for h in handles], loc="center right")
    loss_axis.set_title("Training loss and evaluation scores")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_no_answer_analysis(
    references: dict[str, list[str]], null_odds: dict[str, float], path: Path, scores: dict | None = None
) -> Path | None:
    """Draw null-odds histograms for answerable vs unanswerable questions and the no-answer precision-recall curve.

    `scores` (unprefixed evaluation metrics) puts the abstention diagnostics in the titles: the null odds' ROC AUC,
    the forced HasAns F1 of the best non-null spans, and the best F1 over every threshold, drawn where it lies.
    """
    ids = [qid for qid in references if qid in null_odds]
    if not ids:
        return None
    has_answer = np.array([any(text.strip() for text in references[qid]) for qid in ids])
    odds = np.array([null_odds[qid] for qid in ids], dtype=np.float64)
    odds = np.clip(odds, -1e4, 1e4)  # examples without any valid span carry a very large value
    figure, (histogram_axis, curve_axis) = plt.subplots(1, 2, figsize=(11, 4.5))
    bins = np.linspace(odds.min(), odds.max(), 40) if odds.max() > odds.min() else 10
    histogram_axis.hist(odds[has_answer], bins=bins, alpha=0.6, label=f"HasAns ({has_answer.sum()})")
    histogram_axis.hist(odds[~has_answer], bins=bins, alpha=0.6, label=f"NoAns ({(~has_answer).sum()})")
    scores = scores or {}
    histogram_axis.axvline(0.0, color="black", linestyle="--", linewidth=1, label="threshold 0")
    if "best_f1_thresh" in scores:
        histogram_axis.axvline(scores["best_f1_thresh"], color="tab:red", linestyle=":", linewidth=1.5,
                               label=f"best F1 {scores['best_f1']:.1f} at {scores['best_f1_thresh']:.2f}")
    histogram_axis.set_xlabel("null odds (null score - best span score)")
    histogram_axis.set_ylabel("questions")
    histogram_axis.legend()
    auc = null_odds_auc({qid: null_odds[qid] for qid in ids}, dict(zip(ids, has_answer.tolist())))
    histogram_axis.set_title(f"Null odds by question type (ROC AUC {auc:.3f})")
    if (~has_answer).any():
        precision, recall, _ = no_answer_curve(has_answer, odds)
        curve_axis.plot(recall, precision, color="tab:purple")
    curve_axis.set_xlim(0, 1)
    curve_axis.set_ylim(0, 1.02)
    curve_axis.set_xlabel("recall of unanswerable questions")
    curve_axis.set_ylabel("precision of 'no answer'")
    forced = scores.get("forced_HasAns_f1")
    forced = "" if forced is None else f"; best non-null spans: HasAns F1 {forced:.1f}"
    curve_axis.set_title(f"No-answer detection over the threshold{forced}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_figures(
    log_history: list[dict], output_dir: str, references: dict[str, list[str]] | None = None
) -> list[Path]:
    """Write the PNG figures of a run into `output_dir`; return the paths written.

    The no-answer figure reads `eval_null_odds.json`, the file evaluation wrote, so it shows exactly the scores
    that were reported.
    """
    folder = Path(output_dir)
    written = [plot_training_curves(log_history, folder / TRAINING_FIGURE)]
    null_odds_file, results_file = folder / "eval_null_odds.json", folder / "eval_results.json"
    if references and null_odds_file.exists():
        null_odds = json.loads(null_odds_file.read_text(encoding="utf-8"))
        metrics = json.loads(results_file.read_text(encoding="utf-8")) if results_file.exists() else {}
        scores = {key.removeprefix("eval_"): value for key, value in metrics.items()}
        written.append(plot_no_answer_analysis(references, null_odds, folder / NO_ANSWER_FIGURE, scores))
    return [path for path in written if path is not None]


METRIC_MEANINGS = {
    "exact": "exact match of the predictions (official)",
    "f1": "F1 of the predictions (official)",
    "HasAns_exact": "exact match on answerable questions",
    "HasAns_f1": "F1 on answerable questions",
    "NoAns_exact": "share of unanswerable questions answered with no answer",
    "NoAns_f1": "the same (F1 equals exact match there)",
    "total": "questions scored",
    "forced_HasAns_f1": "F1 of the best non-null span on answerable questions: how well spans are found, "
                        "whatever abstention does",
    "null_odds_auc": "ROC AUC of the null odds for telling unanswerable from answerable questions (0.5 = chance)",
    "best_f1": "F1 at the best null-odds threshold, over every threshold",
    "best_f1_thresh": "that threshold: pass it as --null_score_diff_threshold (tune it on held-out data)",
}


@dataclass(frozen=True)
class CardData:
    """How the card names the data: Hub ids as published, local files by their plain names (no paths)."""

    training: str | None = None
    evaluation: str | None = None
    hub_datasets: tuple[str, ...] = ()


def card_metadata(model_id: str, base_model: str, data: CardData, scores: dict, version: str) -> ModelCardData:
    """Return the card's Hub metadata; model-index holds the exact match and F1 measured on the evaluation data."""
    results = [
        EvalResult(task_type="question-answering", task_name="Extractive question answering",
                   dataset_type=data.evaluation, dataset_name=data.evaluation, dataset_split="validation",
                   metric_type=metric_type, metric_name=f"{label} (SQuAD {version})",
                   metric_value=round(scores[key], 2))
        for key, metric_type, label in (("exact", "exact_match", "Exact match"), ("f1", "f1", "F1"))
        if key in scores and data.evaluation
    ]
    return ModelCardData(
        model_name=model_id, base_model=base_model, library_name="transformers", pipeline_tag="question-answering",
        tags=["question-answering", "extractive-qa", "pointer-distilbert"], datasets=list(data.hub_datasets) or None,
        eval_results=results or None,
    )


def model_card(model_id: str, base_model: str, data: CardData, metrics: dict, hyperparameters: dict) -> str:
    """Return a model card (README.md with Hub metadata) stating the scores and how to use the model."""
    scores = {key[len("eval_"):]: value for key, value in metrics.items() if key.startswith("eval_")}
    table = "\n".join(f"| {key} | {scores[key]:.4g} | {meaning} |" for key, meaning in METRIC_MEANINGS.items()
                      if key in scores)
    settings = "\n".join(f"- {key}: {value}" for key, value in hyperparameters.items())
    version = "2.0" if "NoAns_total" in scores or "HasAns_total" in scores else "1.1"
    return f"""---
{card_metadata(model_id, base_model, data, scores, version).to_yaml()}
---

# {model_id}

Extractive question answering: DistilBERT with an answer-pointer head (the end pointer is conditioned on the
start distribution; [CLS] is the no-answer pointer), fine-tuned from `{base_model}` with Adafactor on
{data.training or "the training data"}.

## Evaluation

Official SQuAD {version} metric on {data.evaluation or "the evaluation set"}. `eval_predictions.json` and
`eval_null_odds.json` in this folder re-score to the official numbers, and `eval_nonnull_predictions.json` with the
same null odds to the `best_*` ones (`python utils_qa.py score DATA FILE --null-odds eval_null_odds.json`):

| metric | value | what it says |
|---|---|---|
{table}

## Training settings

{settings}
{usage_section(model_id)}"""


def usage_section(model_id: str) -> str:
    """Return the model card's how-to-use section for a model published as `model_id`."""
    return f"""
## How to use

The model is a DistilBERT encoder with an answer-pointer head; its code (`modeling_pointer_distilbert.py`) and its
question-answering pipeline (`pipeline.py`, with `features.py` and `spans.py`) are shipped with the weights, so
`pip install torch transformers` is all it needs:

```python
from transformers import pipeline

qa = pipeline("question-answering", model="{model_id}", trust_remote_code=True)
qa(question="...", context="...")  # {{"score": ..., "start": ..., "end": ..., "answer": ...}}
```

The pipeline takes the arguments of transformers 4.x's (`top_k`, `handle_impossible_answer`, `max_answer_len`,
`max_seq_len`, `doc_stride`, `max_question_len`, `align_to_words`, `batch_size`), windows long contexts and, with
no argument, answers as the evaluation above did, with its settings and null-odds threshold ("" means no answer).
The model alone:

```python
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

model = AutoModelForQuestionAnswering.from_pretrained("{model_id}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{model_id}")
```
"""


def write_model_card(output_dir: str, model_id: str, base_model: str, data: CardData, hyperparameters: dict) -> Path:
    """Write README.md into `output_dir` from the run's `all_results.json`; return its path."""
    folder = Path(output_dir)
    results_file = folder / "all_results.json"
    metrics = json.loads(results_file.read_text(encoding="utf-8")) if results_file.exists() else {}
    card = folder / "README.md"
    card.write_text(model_card(model_id, base_model, data, metrics, hyperparameters), encoding="utf-8")
    return card
