"""Do question–context matching features tell unanswerable questions apart on unseen articles better than the
model's null odds?

    python bench/real_data.py --variants as-configured --seeds 42 --output-dir build/cv/one_epoch
    python bench/abstention_features.py build/cv/one_epoch

Why: SQuAD 2.0's unanswerable questions were written against their paragraph, often by changing one word or
entity, so a question whose words the passage lacks is a candidate for "no answer". Before such features go into
the verifier, this measures whether they carry a signal that transfers: for every finished run of
`bench/real_data.py`, the null-odds AUC on the held-out fold of the model's own null odds, of each feature alone,
and of a logistic regression over all of them fitted on the run's calibration split (`calibration_*.json`) and
applied to the fold, which is how a post-hoc verifier would be trained. Prints, per output folder and variant, the
mean ± standard deviation over runs and the paired difference to the null odds.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from machine import ROOT

sys.path.insert(0, str(ROOT))

from real_data import format_spread  # noqa: E402

STOP_WORDS = frozenset(
    "a an the of in on at to for from by with and or is are was were be been being do does did what which who whom "
    "whose when where why how that this these those it its as not no than then there their they he she his her".split()
)
FEATURES = ("null odds", "question words missing from the passage", "question words missing from the answer's "
            "sentence", "answer length in words")


def content_words(text: str) -> set[str]:
    """Return the lower-cased words of `text` without stop words."""
    return {word for word in re.findall(r"[a-z0-9]+", text.lower()) if word not in STOP_WORDS}


def sentence_around(context: str, answer: str) -> str:
    """Return the sentence of `context` holding the first occurrence of `answer`, the whole context if none."""
    start = context.find(answer) if answer else -1
    if start < 0:
        return context
    left = max(context.rfind(mark, 0, start) for mark in ".!?")
    right = min((index for index in (context.find(mark, start + len(answer)) for mark in ".!?") if index >= 0),
                default=len(context))
    return context[left + 1:right + 1]


def question_features(question: str, context: str, answer: str, null_odds: float) -> list[float]:
    """Return the FEATURES of one question (missing shares are of the question's content words)."""
    words = content_words(question) or {""}
    missing_passage = len(words - content_words(context)) / len(words)
    missing_sentence = len(words - content_words(sentence_around(context, answer))) / len(words)
    return [null_odds, missing_passage, missing_sentence, len(answer.split())]


def read_split(path: Path, odds_file: Path, spans_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (features, is unanswerable) of the questions answered in `odds_file`, from the data at `path`."""
    odds, spans = json.loads(odds_file.read_text()), json.loads(spans_file.read_text())
    rows, labels = [], []
    for article in json.loads(path.read_text())["data"]:
        for paragraph in article["paragraphs"]:
            for question in paragraph["qas"]:
                if question["id"] in odds:
                    rows.append(question_features(question["question"], paragraph["context"], spans[question["id"]],
                                                  odds[question["id"]]))
                    labels.append(not question["answers"])
    return np.array(rows, dtype=np.float64), np.array(labels)


def auc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Return the area under the ROC curve of `scores` for `is_positive` (ties count one half)."""
    positive, negative = scores[is_positive], scores[~is_positive]
    greater = (positive[:, None] > negative[None, :]).sum() + 0.5 * (positive[:, None] == negative[None, :]).sum()
    return float(greater / (len(positive) * len(negative)))


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """Return the weights (last: bias) of the logistic regression minimising the summed log loss plus
    `l2` / 2 times the squared weights, found by Newton's method (exact where gradient descent stops short on
    hundreds of correlated features)."""
    design = np.c_[features, np.ones(len(features))]
    weights = np.zeros(design.shape[1])
    for _ in range(50):
        probability = 1 / (1 + np.exp(-design @ weights))
        gradient = design.T @ (probability - labels) + l2 * weights
        hessian = (design * (probability * (1 - probability))[:, None]).T @ design + l2 * np.eye(len(weights))
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    return weights


def fitted_null_odds(train_features: np.ndarray, train_labels: np.ndarray, features: np.ndarray,
                     l2: float = 1.0) -> np.ndarray:
    """Return the null odds of `features` from `fit_logistic` on the training rows, every column standardised by the
    training rows' mean and standard deviation."""
    mean, scale = train_features.mean(axis=0), train_features.std(axis=0) + 1e-9
    weights = fit_logistic((train_features - mean) / scale, train_labels.astype(np.float64), l2)
    return np.c_[(features - mean) / scale, np.ones(len(features))] @ weights


def run_aucs(folder: Path) -> dict[str, float] | None:
    """Return each feature's and the fitted combination's AUC on the run's held-out fold, None without files."""
    model = folder / "model"
    if not (model / "calibration_null_odds.json").exists() or not (model / "eval_null_odds.json").exists():
        return None
    arguments = json.loads((folder / "arguments.json").read_text())
    calibration = read_split(Path(arguments["train_file"]), model / "calibration_null_odds.json",
                             model / "calibration_nonnull_predictions.json")
    held_out = read_split(Path(arguments["validation_file"]), model / "eval_null_odds.json",
                          model / "eval_nonnull_predictions.json")
    aucs = {name: auc(held_out[1], held_out[0][:, index]) for index, name in enumerate(FEATURES)}
    aucs["all four, fitted on the calibration split"] = auc(
        held_out[1], fitted_null_odds(calibration[0], calibration[1], held_out[0]))
    return aucs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dirs", nargs="+", help="output folders of bench/real_data.py")
    args = parser.parse_args()
    groups: dict[str, list[dict[str, float]]] = {}
    for output in map(Path, args.output_dirs):
        for folder in sorted(output.glob("*/fold-*/seed-*")):
            if (aucs := run_aucs(folder)) is not None:
                groups.setdefault(f"{output.name}/{folder.parts[-3]}", []).append(aucs)
    if not groups:
        raise SystemExit("no finished run with calibration files under " + " ".join(args.output_dirs))
    print("Null-odds AUC on the held-out folds (mean ± standard deviation over runs)\n")
    print("| runs | score | AUC | paired vs null odds |\n|---|---|---|---|")
    for group, runs in groups.items():
        for name in runs[0]:
            values = [run[name] for run in runs]
            paired = [run[name] - run["null odds"] for run in runs]
            print(f"| {group} ({len(runs)}) | {name} | {format_spread(values, 3)} | {format_spread(paired, 3)} |")

if __name__ == "__main__":
    main()
