"""Which rule for choosing the shipped threshold holds on articles the model never saw.

    python bench/real_data.py --variants as-configured stock --seeds 42 --output-dir build/cv/one_epoch
    python bench/threshold_rules.py build/cv/one_epoch

Why: a model's threshold is chosen on a calibration split of a few held-out training articles. A rule that follows
that split's noise answers too often on the next article whenever the null odds barely separate the questions. A
rule is judged here by what its threshold scores on an article it was not chosen on, without training anything:
each finished run of `bench/real_data.py` saw neither its calibration articles C (`calibration_*.json`, one or
two articles) nor its held-out fold's two articles. For each fold article T, a rule chooses a threshold on C (what
the run's own calibration saw) or on C and the fold's other article (one article more), and T is scored at it.
Every rule is thus compared on the same models and the same target articles; "C, 2 SE" is what training ships.

Prints, per output folder, variant and rule, over the (run, target article) pairs: the mean ± standard deviation
of F1 minus T's no-answer share (what answering nothing scores; the gain of answering), the worst such gain, the
share of T's questions answered, and the paired difference against the F1 maximum on C; then the shipped rule's
F1 minus the no-answer share on each whole fold at the threshold today's rule picks on the run's own calibration
split (runs trained before the rule shipped other thresholds; their split may also hold one article, not two).
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

from machine import ROOT

sys.path.insert(0, str(ROOT))

from real_data import format_spread  # noqa: E402

from utils_qa import calibrated_null_threshold, compute_squad_metrics  # noqa: E402

BASELINE = "C, best F1"
# A rule: (calibrate on the fold's other article as well, standard errors between articles), or a fixed threshold.
RULES = {
    BASELINE: (False, 0.0),
    "C, 1 SE": (False, 1.0),
    "C, 2 SE": (False, 2.0),
    "C + other, best F1": (True, 0.0),
    "C + other, 1 SE": (True, 1.0),
    "C + other, 2 SE": (True, 2.0),
    "threshold 0": None,
}


def read_questions(path: Path) -> dict[str, tuple[str, list[str]]]:
    """Return question id → (article title, gold answer texts) of a nested SQuAD JSON file."""
    document = json.loads(path.read_text())
    return {question["id"]: (article["title"], [answer["text"] for answer in question["answers"]])
            for article in document["data"] for paragraph in article["paragraphs"] for question in paragraph["qas"]}


def read_run(folder: Path) -> dict | None:
    """Return a finished run's answers on its three unseen articles, or None when its files are missing.

    Keys: references, spans (best non-null answers), odds, article (question id → title), calibration (the ids of
    C), targets (title → ids of each held-out fold article).
    """
    model = folder / "model"
    names = ["calibration_null_odds.json", "calibration_nonnull_predictions.json", "eval_null_odds.json",
             "eval_nonnull_predictions.json"]
    if not all((model / name).exists() for name in names):
        return None
    calibration_odds, calibration_spans, eval_odds, eval_spans = (json.loads((model / name).read_text())
                                                                  for name in names)
    arguments = json.loads((folder / "arguments.json").read_text())
    training = read_questions(Path(arguments["train_file"]))
    held_out = read_questions(Path(arguments["validation_file"]))
    questions = {**{q: training[q] for q in calibration_odds}, **{q: held_out[q] for q in eval_odds}}
    targets: dict[str, list[str]] = {}
    for question_id in eval_odds:
        targets.setdefault(held_out[question_id][0], []).append(question_id)
    return {"references": {q: golds for q, (_, golds) in questions.items()},
            "spans": {**calibration_spans, **eval_spans}, "odds": {**calibration_odds, **eval_odds},
            "article": {q: title for q, (title, _) in questions.items()},
            "calibration": list(calibration_odds), "targets": targets}


def choose(run: dict, ids: list[str], standard_errors: float) -> float:
    """Return the threshold `calibrated_null_threshold` chooses on questions `ids` of `run`."""
    def subset(mapping):
        return {q: mapping[q] for q in ids}
    return calibrated_null_threshold(subset(run["references"]), subset(run["spans"]), subset(run["odds"]),
                                     subset(run["article"]), standard_errors)


def score_target(run: dict, ids: list[str], threshold: float) -> dict[str, float]:
    """Return the gain over answering nothing (F1 points) and the percentage answered on questions `ids`."""
    references = {q: run["references"][q] for q in ids}
    spans, odds = {q: run["spans"][q] for q in ids}, {q: run["odds"][q] for q in ids}
    f1 = compute_squad_metrics(references, spans, odds, null_odds_threshold=threshold)["f1"]
    no_answer_share = 100 * sum(not golds for golds in references.values()) / len(ids)
    return {"gain": f1 - no_answer_share, "answered": 100 * sum(odds[q] <= threshold for q in ids) / len(ids)}


def score_rules(run: dict) -> list[dict[str, dict]]:
    """Return, for each target article of `run`, every rule's score there."""
    scored = []
    for target, ids in run["targets"].items():
        other = [q for title, questions in run["targets"].items() if title != target for q in questions]
        results = {}
        for rule, setting in RULES.items():
            if setting is None:
                threshold = 0.0
            else:
                with_other, standard_errors = setting
                threshold = choose(run, run["calibration"] + (other if with_other else []), standard_errors)
            results[rule] = score_target(run, ids, threshold)
        scored.append(results)
    return scored


def rule_table(scores: dict[str, list[dict]]) -> str:
    """Return the markdown table of every variant and rule over its (run, target article) pairs."""
    lines = ["| variant | rule | targets | gain over answering nothing | worst | answered % | paired vs "
             f"{BASELINE} |", "|---|---|---|---|---|---|---|"]
    for variant, targets in scores.items():
        for rule in RULES:
            gains = [target[rule]["gain"] for target in targets]
            paired = [target[rule]["gain"] - target[BASELINE]["gain"] for target in targets]
            answered = [target[rule]["answered"] for target in targets]
            lines.append(f"| {variant} | {rule} | {len(targets)} | {format_spread(gains, 1)} | {min(gains):.1f} | "
                         f"{statistics.fmean(answered):.0f} | {format_spread(paired, 1)} |")
    return "\n".join(lines)


def shipped_rule_table(folds: dict[str, list[dict]]) -> str:
    """Return the markdown table of the shipped rule ("C, 2 SE") scored on each run's whole held-out fold."""
    lines = ["| runs | folds × seeds | F1 − no-answer share | worst | answered % |", "|---|---|---|---|---|"]
    for group, scored in folds.items():
        gains = [score["gain"] for score in scored]
        answered = statistics.fmean(score["answered"] for score in scored)
        lines.append(f"| {group} | {len(scored)} | {format_spread(gains, 1)} | {min(gains):.1f} | {answered:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dirs", nargs="+", help="output folders of bench/real_data.py")
    args = parser.parse_args()
    scores: dict[str, list[dict]] = {}
    folds: dict[str, list[dict]] = {}
    skipped = []
    for output in map(Path, args.output_dirs):
        for folder in sorted(output.glob("*/fold-*/seed-*")):
            run = read_run(folder)
            if run is None:
                skipped.append(str(folder))
                continue
            group = f"{output.name}/{folder.parts[-3]}"
            scores.setdefault(group, []).extend(score_rules(run))
            whole_fold = [q for questions in run["targets"].values() for q in questions]
            shipped = choose(run, run["calibration"], RULES["C, 2 SE"][1])
            folds.setdefault(group, []).append(score_target(run, whole_fold, shipped))
    if not scores:
        raise SystemExit("no finished run with calibration files under " + " ".join(args.output_dirs))
    print(rule_table(scores))
    print("\nThe rule training ships (C, 2 SE) on each whole held-out fold, as `bench/real_data.py` scores it:\n")
    print(shipped_rule_table(folds))
    if skipped:
        print(f"\n{len(skipped)} run(s) without calibration files skipped: {', '.join(skipped)}")


if __name__ == "__main__":
    main()
