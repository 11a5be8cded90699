"""What a run writes besides its weights and metrics: the training-curve and no-answer figures, the model card, and a
tokenizer that saves only its configuration."""

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: runs on servers without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from huggingface_hub import EvalResult, ModelCard, ModelCardData  # noqa: E402

from utils_qa import null_odds_auc  # noqa: E402

# What loading (`from_pretrained`) and the last call's truncation and padding leave among a tokenizer's init
# arguments; `save_pretrained` would write them into tokenizer_config.json as if they configured it.
TOKENIZER_LOADING_STATE = ("local_files_only", "is_local", "max_length", "stride", "truncation_strategy",
                           "pad_to_multiple_of")
TRAINING_FIGURE = "training_curves.png"
NO_ANSWER_FIGURE = "no_answer_analysis.png"


def without_loading_state(tokenizer):
    """Return `tokenizer`, changed in place so that saving it writes only its configuration: without
    `TOKENIZER_LOADING_STATE`, and with the backend's truncation and padding off, since every call sets its own."""
    for key in TOKENIZER_LOADING_STATE:
        tokenizer.init_kwargs.pop(key, None)
    tokenizer.backend_tokenizer.no_truncation()
    tokenizer.backend_tokenizer.no_padding()
    return tokenizer


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


def no_answer_curve(has_answer: np.ndarray, null_odds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return precision and recall of "no answer" (null odds above the threshold; the unanswerable questions are the
    positives) as the threshold falls past each question's null odds, highest first."""
    positives = ~has_answer[np.argsort(-null_odds, kind="stable")]
    true_positives = np.cumsum(positives)
    return true_positives / np.arange(1, len(positives) + 1), true_positives / max(int(positives.sum()), 1)


def training_figure(log_history: list[dict]) -> plt.Figure | None:
    """Return the figure of training loss and evaluation EM/F1 against steps; None when no training step was logged
    (a run that only evaluated logs its scores at step 0)."""
    curves = curves_from_log_history(log_history)
    if not any(step > 0 for steps, _ in curves.values() for step in steps):
        return None
    figure, loss_axis = plt.subplots(figsize=(8, 4.5))
    if "training loss" in curves:
        loss_axis.plot(*curves["training loss"], color="tab:blue", label="training loss")
    loss_axis.set(xlabel="step", ylabel="training loss")
    score_axis = loss_axis.twinx()
    for name, color in (("eval EM", "tab:orange"), ("eval F1", "tab:green")):
        if name in curves:
            score_axis.plot(*curves[name], marker="o", color=color, label=name)
    score_axis.set_ylabel("score (0-100)")
    handles = loss_axis.get_legend_handles_labels()[0] + score_axis.get_legend_handles_labels()[0]
    loss_axis.legend(handles, [h.get_label() for h in handles], loc="center right")
    loss_axis.set_title("Training loss and evaluation scores")
    figure.tight_layout()
    return figure


def no_answer_figure(references: dict[str, list[str]], null_odds: dict[str, float], scores: dict | None = None):
    """Return the figure of null-odds histograms for answerable vs unanswerable questions beside the no-answer
    precision-recall curve, None when no question has null odds. `scores` (unprefixed evaluation metrics) adds the
    threshold the run answered with, the best F1's, and the abstention diagnostics (ROC AUC, forced HasAns F1)."""
    ids = [qid for qid in references if qid in null_odds]
    if not ids:
        return None
    has_answer = np.array([any(text.strip() for text in references[qid]) for qid in ids])
    # Clipped: examples without any valid span carry a very large value.
    odds = np.clip(np.array([null_odds[qid] for qid in ids], dtype=np.float64), -1e4, 1e4)
    figure, (histogram_axis, curve_axis) = plt.subplots(1, 2, figsize=(11, 4.5))
    bins = np.linspace(odds.min(), odds.max(), 40) if odds.max() > odds.min() else 10
    histogram_axis.hist(odds[has_answer], bins=bins, alpha=0.6, label=f"HasAns ({has_answer.sum()})")
    histogram_axis.hist(odds[~has_answer], bins=bins, alpha=0.6, label=f"NoAns ({(~has_answer).sum()})")
    scores = scores or {}
    if "null_score_diff_threshold" in scores:
        threshold = scores["null_score_diff_threshold"]
        histogram_axis.axvline(threshold, color="black", linestyle="--", linewidth=1,
                               label=f"answered at threshold {threshold:.2f}")
    if "best_f1_thresh" in scores:
        histogram_axis.axvline(scores["best_f1_thresh"], color="tab:red", linestyle=":", linewidth=1.5,
                               label=f"best F1 {scores['best_f1']:.1f} at {scores['best_f1_thresh']:.2f}")
    histogram_axis.set(xlabel="null odds (null score - best span score)", ylabel="questions")
    histogram_axis.legend(fontsize=8)
    auc = null_odds_auc(null_odds, dict(zip(ids, has_answer.tolist())))  # reads the odds of these ids only
    histogram_axis.set_title(f"Null odds by question type\n(ROC AUC {auc:.3f})", fontsize=10)
    if (~has_answer).any():
        precision, recall = no_answer_curve(has_answer, odds)
        curve_axis.plot(recall, precision, color="tab:purple")
    curve_axis.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall of unanswerable questions",
                   ylabel="precision of 'no answer'")
    forced = scores.get("forced_HasAns_f1")
    forced = "" if forced is None else f"\n(best non-null spans: HasAns F1 {forced:.1f})"
    curve_axis.set_title(f"No-answer detection over the threshold{forced}", fontsize=10)
    figure.tight_layout()
    return figure


def write_figures(log_history: list[dict], output_dir: str,
                  references: dict[str, list[str]] | None = None) -> list[Path]:
    """Write the PNG figures of a run into `output_dir`; return the paths written. The no-answer figure reads the
    files evaluation wrote (`eval_null_odds.json`, `eval_results.json`), so it shows exactly the reported scores."""
    folder = Path(output_dir)
    figures = {TRAINING_FIGURE: training_figure(log_history)}
    null_odds = read_json(folder / "eval_null_odds.json") if references else {}
    if null_odds:
        scores = {key.removeprefix("eval_"): value for key, value in read_json(folder / "eval_results.json").items()}
        figures[NO_ANSWER_FIGURE] = no_answer_figure(references, null_odds, scores)
    written = []
    for name, figure in figures.items():
        if figure is not None:
            figure.savefig(folder / name, dpi=110)
            plt.close(figure)
            written.append(folder / name)
    return written


def read_json(path: Path) -> dict:
    """Return the JSON object in `path`; empty when a run did not write that file."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


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


@dataclass(frozen=True)
class TrainingRecord:
    """How the card's model was trained, as far as it is recorded. `evaluated` is None when the run writing the card
    trained the model; otherwise it names the model that run only evaluated, and the other fields come from that
    model's saved run, each None where nothing records it (a Hub id, or a folder saved without its run)."""

    base_model: str | None
    arguments: dict | None  # TrainingArguments as training_args.json holds them
    epochs: float | None
    steps: int | None
    total_batch_size: int | None  # over devices and accumulation steps
    evaluated: str | None = None


def training_record(args, state, model_name_or_path: str) -> TrainingRecord:
    """Return how the card's model was trained: by this run when it took a training step, else by the saved run of
    `model_name_or_path`, the model this run evaluated."""
    if state.global_step:
        total = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
        return TrainingRecord(model_name_or_path, args.to_dict(), state.epoch, state.global_step, total)
    return saved_training_record(model_name_or_path)


def saved_training_record(model: str) -> TrainingRecord:
    """Return what an output folder records of the run that trained it: training_args.json, trainer_state.json and
    the `base_model` of its model card; nothing but the name for a Hub id or a folder without them."""
    folder = Path(model)
    card = folder / "README.md"
    base_model = ModelCard.load(card).data.base_model if card.is_file() else None
    state = read_json(folder / "trainer_state.json")
    return TrainingRecord(base_model, read_json(folder / "training_args.json") or None, state.get("epoch"),
                          state.get("global_step"), None, evaluated=model)


def training_settings(record: TrainingRecord) -> dict:
    """Return the training settings the card lists, none without training arguments. Epochs and steps are those the
    run took (its trainer state), which `--max_steps` can make differ from `--num_train_epochs`."""
    arguments = record.arguments
    if arguments is None:
        return {}
    settings = {"optimizer": arguments["optim"], "learning_rate": arguments["learning_rate"],
                "warmup_steps": arguments["warmup_steps"],
                "per_device_train_batch_size": arguments["per_device_train_batch_size"]}
    if arguments.get("gradient_accumulation_steps", 1) > 1:
        settings["gradient_accumulation_steps"] = arguments["gradient_accumulation_steps"]
    if record.total_batch_size is not None:
        settings["total_train_batch_size"] = record.total_batch_size
    settings["num_train_epochs"] = arguments["num_train_epochs"] if record.epochs is None else round(record.epochs, 2)
    if record.steps is not None:
        settings["training_steps"] = record.steps
    settings["seed"] = arguments["seed"]
    if arguments.get("optim_args"):
        settings["optim_args"] = arguments["optim_args"]
    return settings


def how_it_answered(qa_settings: dict, model_config: dict) -> dict:
    """Return how the evaluation answered: the head, the null-odds threshold and where it came from, and the
    answer similarity's weight in the null odds when the model has the sentence matcher."""
    settings = {"qa_head": model_config.get("qa_head"),
                "null_score_diff_threshold": qa_settings["null_score_diff_threshold"],
                "null_score_diff_threshold_source": qa_settings["null_score_diff_threshold_source"]}
    if model_config.get("answer_similarity"):
        settings["answer_similarity_weight"] = qa_settings["answer_similarity_weight"]
    return settings


def card_metadata(model_id: str, base_model: str | None, data: CardData, scores: dict, version: str) -> ModelCardData:
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


def provenance(record: TrainingRecord, settings: dict, training_data: str | None) -> tuple[str, str]:
    """Return the card's words on where the model comes from, and the opening of its training section (`settings`:
    `training_settings(record)`)."""
    known = [f"from `{record.base_model}`"] if record.base_model else []
    known += [f"with {settings['optimizer']}"] if settings else []
    fine_tuned = " ".join(["fine-tuned", *known])
    if record.evaluated is None:
        return (f"{fine_tuned} on {training_data or 'the training data'}.",
                "From this run's arguments and trainer state:")
    origin = (f"evaluated as saved in `{record.evaluated}`{', ' + fine_tuned if known else ''}. The run that wrote "
              "this folder trained nothing.")
    if settings:
        return origin, (f"From the run that trained `{record.evaluated}`, as saved with it (training_args.json, "
                        "trainer_state.json):")
    return origin, (f"`{record.evaluated}` holds no record of the run that trained it (training_args.json); its own "
                    "model card may say.")


def bullet_list(settings: dict) -> str:
    """Return `settings` as a markdown list, one `- key: value` line each."""
    return "\n".join(f"- {key}: {value}" for key, value in settings.items())


def model_card(model_id: str, data: CardData, metrics: dict, record: TrainingRecord, answered: dict) -> str:
    """Return a model card (README.md with Hub metadata) stating the scores, how the evaluation answered
    (`answered`, from `how_it_answered`), how the model was trained as far as `record` knows, and how to use it."""
    scores = {key[len("eval_"):]: value for key, value in metrics.items() if key.startswith("eval_")}
    table = "\n".join(f"| {key} | {scores[key]:.4g} | {meaning} |" for key, meaning in METRIC_MEANINGS.items()
                      if key in scores)
    version = "2.0" if "NoAns_total" in scores or "HasAns_total" in scores else "1.1"
    settings = training_settings(record)
    origin, training_opening = provenance(record, settings, data.training)
    training = f"{training_opening}\n\n{bullet_list(settings)}" if settings else training_opening
    published_as = record.evaluated or model_id  # where the weights are
    return f"""---
{card_metadata(model_id, record.base_model, data, scores, version).to_yaml()}
---

# {model_id}

Extractive question answering: DistilBERT with an answer-pointer head (the end pointer is conditioned on the
start distribution; [CLS] is the no-answer pointer), {origin}

## Evaluation

Official SQuAD {version} metric on {data.evaluation or "the evaluation set"}. `eval_predictions.json` and
`eval_null_odds.json` in this folder re-score to the official numbers, and `eval_nonnull_predictions.json` with the
same null odds to the `best_*` ones (`python utils_qa.py score DATA FILE --null-odds eval_null_odds.json`):

| metric | value | what it says |
|---|---|---|
{table}

How it answered:

{bullet_list(answered)}

## Training settings

{training}

## How to use

The model is a DistilBERT encoder with an answer-pointer head; its code (`modeling_pointer_distilbert.py`) and its
question-answering pipeline (`pipeline.py`, with `features.py` and `spans.py`) are shipped with the weights, so
`pip install torch transformers` is all it needs:

```python
from transformers import pipeline

qa = pipeline("question-answering", model="{published_as}", trust_remote_code=True)
qa(question="...", context="...")  # {{"score": ..., "start": ..., "end": ..., "answer": ...}}
```

The pipeline takes the arguments of transformers 4.x's (`top_k`, `handle_impossible_answer`, `max_answer_len`,
`max_seq_len`, `doc_stride`, `max_question_len`, `align_to_words`, `batch_size`), windows long contexts and, with
no argument, answers as the evaluation above did, with its settings and null-odds threshold ("" means no answer).
The model alone:

```python
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

model = AutoModelForQuestionAnswering.from_pretrained("{published_as}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{published_as}", trust_remote_code=True)
```

The tokenizer is BERT's own; `AutoTokenizer` reads the model's config first to find it, and without
`trust_remote_code=True` transformers would stop there to ask whether to run the model's code.
"""


def write_model_card(output_dir: str, model_id: str, data: CardData, record: TrainingRecord, answered: dict) -> Path:
    """Write README.md into `output_dir` from the run's `all_results.json`; return its path."""
    card = Path(output_dir) / "README.md"
    metrics = read_json(Path(output_dir) / "all_results.json")
    card.write_text(model_card(model_id, data, metrics, record, answered), encoding="utf-8")
    return card
