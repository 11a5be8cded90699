"""Which no-answer score ranks unanswerable questions best on articles the model never saw.

    python bench/real_data.py --config configs/cpu_small.json --variants as-configured --seeds 42 \
        --output-dir build/cv/cpu_small
    python bench/null_scores.py build/cv/cpu_small

Why: a model with the answer verifier ranks questions by null odds made of two parts, the span head's null score
against its best span and the verifier's no-answer logit, added with weight 1. If one part transfers to new
articles better than the other, weighting it more would raise the null-odds AUC without training anything. Each
finished run of `bench/real_data.py` is re-read with the verifier's logit weighted by w (0: the span head alone, 1:
as trained and shipped, large: the verifier decides); the calibration split (`calibration_null_odds.json`, the
held-out training articles) and the held-out fold are scored with the model saved in the run, and the logits are
cached beside it (`null_score_logits.npz`).

Prints, per variant and weight, the mean ± standard deviation over runs of the AUC on the held-out fold, its paired
difference against w = 1, the AUC on the calibration split, and the gain over answering nothing on the held-out fold
at the threshold today's rule (2 standard errors) picks on the calibration split; the last row of a variant uses,
per run, the weight with the best calibration AUC, which is how a weight could be shipped without looking at the
held-out articles.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from machine import use_repository_offline

use_repository_offline()

from real_data import format_spread  # noqa: E402
from threshold_rules import score_target  # noqa: E402

from squad.calibration import article_keys, calibrated_null_threshold  # noqa: E402
from squad.data import load_squad_file, references_from_dataset  # noqa: E402
from squad.metric import null_odds_auc  # noqa: E402
from squad.postprocess import select_answers  # noqa: E402

WEIGHTS = (0.0, 1.0, 2.0, 5.0, 50.0)
SHIPPED_WEIGHT = 1.0
CHOSEN = "best on calibration"


def reweight_verifier(start_logits: np.ndarray, end_logits: np.ndarray, verifier_logits: np.ndarray, weight: float):
    """Return span logits whose [CLS] logits carry `weight` times the verifier's no-answer logit instead of once.

    The model adds half of the verifier's logit to each [CLS] logit (see `add_to_null_logits`), so the null score
    start[0] + end[0] moves by (weight - 1) times that logit and every other span keeps its score.
    """
    start, end = start_logits.copy(), end_logits.copy()
    start[:, 0] += (weight - 1.0) * verifier_logits / 2
    end[:, 0] += (weight - 1.0) * verifier_logits / 2
    return start, end


def window_logits(model, tokenizer, features, batch_size: int = 32) -> tuple[np.ndarray, ...]:
    """Return the start, end (padded to the longest window) and verifier logits of every window in `features`."""
    import torch

    captured = []
    hook = model.verifier.register_forward_hook(lambda module, inputs, output: captured.append(output.float()))
    width = max(len(ids) for ids in features["input_ids"])
    starts, ends = [], []
    try:
        with torch.no_grad():
            for first in range(0, len(features), batch_size):
                rows = features[first:first + batch_size]
                batch = tokenizer.pad({"input_ids": rows["input_ids"], "attention_mask": rows["attention_mask"]},
                                      padding="max_length", max_length=width, return_tensors="pt")
                output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                starts.append(output.start_logits.float().numpy())
                ends.append(output.end_logits.float().numpy())
    finally:
        hook.remove()
    return np.concatenate(starts), np.concatenate(ends), torch.cat(captured).numpy()


def read_run(folder: Path) -> dict | None:
    """Return a finished run's questions, windows and logits on its calibration split and held-out fold.

    None when the run has no saved model or calibration files. Logits are computed once and cached.
    """
    model_dir = folder / "model"
    if not (model_dir / "calibration_null_odds.json").exists() or not (model_dir / "config.json").exists():
        return None
    from transformers import AutoTokenizer

    from modeling_pointer_distilbert import PointerDistilBertForQuestionAnswering
    from squad.features import prepare_eval_features

    arguments = json.loads((folder / "arguments.json").read_text())
    calibration_ids = set(json.loads((model_dir / "calibration_null_odds.json").read_text()))
    training = load_squad_file(arguments["train_file"])
    splits = {"calibration": training.filter(lambda row: row["id"] in calibration_ids),
              "held_out": load_squad_file(arguments["validation_file"])}
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    settings = config.get("qa_settings") or {}
    window = {key: settings[key] for key in ("max_seq_length", "doc_stride", "max_query_length") if key in settings}
    features = {name: split.map(lambda batch: prepare_eval_features(batch, tokenizer, **window), batched=True,
                                remove_columns=split.column_names) for name, split in splits.items()}
    cache = folder / "null_score_logits.npz"
    if cache.exists():
        stored = np.load(cache)
        logits = {name: tuple(stored[f"{name}_{part}"] for part in ("start", "end", "verifier")) for name in splits}
    else:
        model = PointerDistilBertForQuestionAnswering.from_pretrained(model_dir).eval()
        logits = {name: window_logits(model, tokenizer, features[name]) for name in splits}
        np.savez(cache, **{f"{name}_{part}": array for name, parts in logits.items()
                           for part, array in zip(("start", "end", "verifier"), parts)})
    return {"splits": splits, "features": features, "logits": logits,
            "answer_settings": {"n_best_size": settings.get("n_best_size", 20),
                                "max_answer_length": settings.get("max_answer_length", 30)}}


def score_weight(run: dict, weight: float) -> dict[str, float]:
    """Return the AUCs of null odds with the verifier weighted by `weight`, and the held-out gain at the threshold
    the shipped rule picks on the calibration split with those odds."""
    scored = {}
    for name, split in run["splits"].items():
        start, end = reweight_verifier(*run["logits"][name], weight)
        predictions = select_answers(split, run["features"][name], (start, end), True, **run["answer_settings"])
        scored[name] = (references_from_dataset(split), predictions)
    calibration_refs, calibration = scored["calibration"]
    articles = dict(zip(run["splits"]["calibration"]["id"], article_keys(run["splits"]["calibration"])))
    threshold = calibrated_null_threshold(calibration_refs, calibration.non_null_answers, calibration.null_odds,
                                          articles, 2.0)
    references, held_out = scored["held_out"]
    answers = {"references": references, "spans": held_out.non_null_answers, "odds": held_out.null_odds}

    def auc(refs, predictions):
        return null_odds_auc(predictions.null_odds, {question_id: bool(golds) for question_id, golds in refs.items()})

    return {"auc": auc(references, held_out), "calibration_auc": auc(calibration_refs, calibration),
            "gain": score_target(answers, list(references), threshold)["gain"]}


def score_variant(runs: list[dict]) -> dict[str, list[dict]]:
    """Return, per weight (and the calibration-chosen weight), the scores of every run."""
    table: dict[str, list[dict]] = {str(weight): [] for weight in WEIGHTS}
    table[CHOSEN] = []
    for run in runs:
        by_weight = {weight: score_weight(run, weight) for weight in WEIGHTS}
        for weight, scores in by_weight.items():
            table[str(weight)].append(scores)
        chosen = max(WEIGHTS, key=lambda weight: by_weight[weight]["calibration_auc"])
        table[CHOSEN].append({**by_weight[chosen], "weight": chosen})
    return table


def weight_table(variants: dict[str, dict[str, list[dict]]]) -> str:
    """Return the markdown table of every variant and weight over its runs."""
    lines = ["| variant | verifier weight | runs | held-out AUC | paired vs w = 1 | calibration AUC | "
             "gain at the shipped rule |", "|---|---|---|---|---|---|---|"]
    for variant, table in variants.items():
        shipped = table[str(SHIPPED_WEIGHT)]
        for weight, scores in table.items():
            aucs = [score["auc"] for score in scores]
            paired = [score["auc"] - base["auc"] for score, base in zip(scores, shipped)]
            label = weight if weight != CHOSEN else f"{CHOSEN} ({', '.join(str(s['weight']) for s in scores)})"
            lines.append(f"| {variant} | {label} | {len(scores)} | {format_spread(aucs, 3)} | "
                         f"{format_spread(paired, 3)} | "
                         f"{format_spread([score['calibration_auc'] for score in scores], 3)} | "
                         f"{format_spread([score['gain'] for score in scores], 1)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dirs", nargs="+", type=Path, help="output folders of bench/real_data.py")
    parser.add_argument("--variants", nargs="+", help="only these variants (default: every one found)")
    args = parser.parse_args()
    variants = {}
    for output in args.output_dirs:
        for variant_dir in sorted(path for path in output.iterdir() if path.is_dir() and path.name != "splits"):
            if args.variants and variant_dir.name not in args.variants:
                continue
            runs = [run for folder in sorted(variant_dir.glob("fold-*/seed-*")) if (run := read_run(folder))]
            if runs:
                variants[f"{output.name}/{variant_dir.name}"] = score_variant(runs)
    if not variants:
        sys.exit("no finished run with a saved model and calibration files under " +
                 ", ".join(map(str, args.output_dirs)))
    print(weight_table(variants))


if __name__ == "__main__":
    main()
