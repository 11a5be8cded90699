"""What else the sentence matcher could do, replayed on finished cross-validation runs without training.

    python bench/sentence_replays.py build/cv/cpu_small_bf16/answer-similarity

Each run of `bench/real_data.py` with `--answer_similarity` saved its calibration and evaluation n-best spans and
the matcher (the frozen starting encoder). For every question this script measures the cosine similarity between
the question and each context sentence, then replays four alternatives to what the model ships, each scored as
training would ship it (matcher weighed on the calibration articles, threshold by the 2-standard-error rule) on the
run's held-out fold:

- spans: each n-best span's score gets `w` × (its sentence's similarity − the best sentence's), so spans outside
  the sentence closest to the question lose;
- weight: the matcher's calibrated weight times `k` (1 = equal say, what ships);
- span sentence: the similarity of the sentence holding the best span instead of the closest sentence's;
- token alignment: how well the question's words are matched, each by its closest word of the closest sentence
  (the mean of those cosine similarities between contextual word vectors), instead of one vector per sentence;
- logistic: the threshold where a logistic fit of "answerable" on the calibration null odds says answering pays
  (probability × the calibration's mean forced F1 = 1 − probability), instead of the 2-standard-error rule.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from machine import ROOT, use_repository_offline

use_repository_offline()
sys.path.insert(0, str(ROOT))

from abstention_features import fit_logistic  # noqa: E402
from real_data import format_spread  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from modeling_pointer_distilbert import PointerDistilBertForQuestionAnswering, window_segments  # noqa: E402
from squad.calibration import calibrated_null_threshold, similarity_weight  # noqa: E402
from squad.metric import compute_squad_metrics, null_odds_auc, raw_scores  # noqa: E402


def read_questions(path: Path) -> dict[str, dict]:
    """Return question id → {question, context, title, answers} of a nested SQuAD JSON file."""
    document = json.loads(path.read_text())
    return {q["id"]: {"question": q["question"], "context": p["context"], "title": a["title"],
                      "answers": [answer["text"] for answer in q["answers"]]}
            for a in document["data"] for p in a["paragraphs"] for q in p["qas"]}


class SentenceSimilarities:
    """Question–sentence cosine similarities with a run's matcher, cached by question id (every run's matcher is
    the same starting encoder)."""

    def __init__(self, model_dir: Path):
        model = PointerDistilBertForQuestionAnswering.from_pretrained(model_dir).eval()
        self.matcher = model.sentence_matcher
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.cache: dict[str, tuple[list[int], np.ndarray, float]] = {}

    def states(self, texts: list[list[int]]) -> list[torch.Tensor]:
        """Unit-length contextual vectors of each token list's words ([CLS] and [SEP] added, then dropped)."""
        vectors = []
        with torch.no_grad():
            for tokens in texts:
                ids = torch.tensor([self.matcher.wrap(tokens)])
                hidden = self.matcher.encoder(input_ids=ids).last_hidden_state[0, 1:-1]
                vectors.append(torch.nn.functional.normalize(hidden, dim=-1))
        return vectors

    def sentence_starts_and_similarities(self, question_id: str, record: dict) -> tuple[list[int], np.ndarray, float]:
        """Return each sentence's first character, its similarity to the question, and the token alignment of the
        question with the closest sentence."""
        if question_id not in self.cache:
            context = self.tokenizer(record["context"], add_special_tokens=False, return_offsets_mapping=True)
            question = self.tokenizer(record["question"], add_special_tokens=False)["input_ids"]
            cls_id, sep_id = self.matcher.cls_id, self.matcher.sep_id
            question, *sentences = window_segments([cls_id, *question, sep_id, *context["input_ids"], sep_id], sep_id,
                                                   self.matcher.sentence_ends)
            first_tokens = np.cumsum([0, *map(len, sentences[:-1])])
            starts = [context["offset_mapping"][token][0] for token in first_tokens]
            with torch.no_grad():
                embeddings = self.matcher.embed([question, *sentences], torch.device("cpu")).numpy()
            similarities = embeddings[1:] @ embeddings[0]
            question_words, closest_words = self.states([question, sentences[int(similarities.argmax())]])
            alignment = float((question_words @ closest_words.T).max(dim=1).values.mean())
            self.cache[question_id] = (starts, similarities, alignment)
        return self.cache[question_id]


def sentence_of_spans(sentence_starts: list[int], span_starts: list[int]) -> np.ndarray:
    """Index of the sentence holding each span's first character, given each sentence's first character."""
    return np.maximum(np.searchsorted(sentence_starts, span_starts, "right") - 1, 0)


def read_split(folder: Path, part: str, questions: dict, similarities: SentenceSimilarities, weight: float,
               centre: float) -> dict[str, dict]:
    """Return question id → {null: the reader's null score (matcher shift undone), spans: [(score, text,
    similarity of the span's sentence)], closest: the closest sentence's similarity, answers, title}."""
    nbest = json.loads((folder / "model" / f"{part}_nbest_predictions.json").read_text())
    split = {}
    for question_id, entries in nbest.items():
        record = questions[question_id]
        starts, sims, alignment = similarities.sentence_starts_and_similarities(question_id, record)
        closest = float(sims.max())
        null = next(entry["score"] for entry in entries if not entry["text"])
        sentence_of = sentence_of_spans(starts, [entry["start"] for entry in entries])
        spans = [(entry["score"], entry["text"], float(sims[sentence]))
                 for entry, sentence in zip(entries, sentence_of) if entry["text"]]
        split[question_id] = {"null": null + weight * (closest - centre), "spans": spans, "closest": closest,
                              "alignment": alignment, "answers": record["answers"], "title": record["title"]}
    return split


def decide(split: dict, sentence_bonus: float, null_feature: str) -> tuple[dict, dict, dict]:
    """Return (best span text, reader null odds, matcher feature) per question."""
    texts, odds, feature = {}, {}, {}
    for question_id, entry in split.items():
        def score(span, closest=entry["closest"]):
            return span[0] + sentence_bonus * (span[2] - closest)
        best = max(entry["spans"], key=score)
        texts[question_id], odds[question_id] = best[1], entry["null"] - score(best)
        feature[question_id] = {"span sentence": best[2], "token alignment": entry["alignment"]}.get(
            null_feature, entry["closest"])
    return texts, odds, feature


def logistic_threshold(references: dict, texts: dict, odds: dict) -> float:
    """The null odds at which a logistic fit of P(answerable | odds) makes answering break even."""
    ids = list(references)
    x = np.array([odds[q] for q in ids])
    y = np.array([bool(references[q]) for q in ids], dtype=np.float64)
    mean, spread = x.mean(), x.std() or 1.0
    standard_slope, standard_intercept = fit_logistic(((x - mean) / spread)[:, None], y, l2=1e-6)
    intercept, slope = standard_intercept - standard_slope * mean / spread, standard_slope / spread
    if slope >= 0:
        return float(x.min() - 1)
    _, f1 = raw_scores({q: golds for q, golds in references.items() if golds}, texts)
    span_f1 = statistics.fmean(f1.values())
    return float((np.log(1 / span_f1) - intercept) / slope)  # p * f = 1 - p  <=>  logit(p) = -log(f)


def replay(folder: Path, questions: dict, similarities: SentenceSimilarities, sentence_bonus: float = 0.0,
           weight_factor: float = 1.0, null_feature: str = "closest sentence", rule: str = "2 SE") -> dict:
    """Return the held-out fold's gain over answering nothing, forced HasAns F1, null-odds AUC and share answered."""
    config = json.loads((folder / "model" / "config.json").read_text())
    weight, centre = config["answer_similarity_weight"], config["answer_similarity_center"]
    calibration, held_out = (read_split(folder, part, questions, similarities, weight, centre)
                             for part in ("calibration", "eval"))
    cal_texts, cal_odds, cal_feature = decide(calibration, sentence_bonus, null_feature)
    texts, odds, feature = decide(held_out, sentence_bonus, null_feature)
    cal_refs = {q: entry["answers"] for q, entry in calibration.items()}
    cal_has = {q: bool(golds) for q, golds in cal_refs.items()}
    w, c = similarity_weight(cal_odds, cal_feature)
    weighed = {q: cal_odds[q] - weight_factor * w * (cal_feature[q] - c) for q in cal_odds}
    if null_odds_auc(weighed, cal_has) > null_odds_auc(cal_odds, cal_has):
        cal_odds = weighed
        odds = {q: odds[q] - weight_factor * w * (feature[q] - c) for q in odds}
    if rule == "logistic":
        threshold = logistic_threshold(cal_refs, cal_texts, cal_odds)
    else:
        articles = {q: entry["title"] for q, entry in calibration.items()}
        threshold = calibrated_null_threshold(cal_refs, cal_texts, cal_odds, articles, 2.0)
    references = {q: entry["answers"] for q, entry in held_out.items()}
    metrics = compute_squad_metrics(references, texts, odds, null_odds_threshold=threshold, non_null_predictions=texts)
    no_answer_share = 100 * statistics.fmean(not golds for golds in references.values())
    return {"gain": metrics["f1"] - no_answer_share, "forced": metrics["forced_HasAns_f1"],
            "auc": metrics["null_odds_auc"], "answered": 100 * statistics.fmean(odds[q] <= threshold for q in odds)}


ALTERNATIVES = {
    "as shipped": {},
    "spans, w = 4": {"sentence_bonus": 4.0},
    "spans, w = 8": {"sentence_bonus": 8.0},
    "spans, w = 16": {"sentence_bonus": 16.0},
    "weight × 0.5": {"weight_factor": 0.5},
    "weight × 1.5": {"weight_factor": 1.5},
    "weight × 2": {"weight_factor": 2.0},
    "span sentence": {"null_feature": "span sentence"},
    "token alignment": {"null_feature": "token alignment"},
    "logistic threshold": {"rule": "logistic"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant_dir", type=Path, help="a variant folder of bench/real_data.py (fold-*/seed-*)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = sorted(path.parent for path in args.variant_dir.glob("fold-*/seed-*/model/eval_nbest_predictions.json"))
    runs = [run.parent for run in runs]
    if not runs:
        sys.exit(f"{args.variant_dir}: no finished runs (fold-*/seed-*/model/eval_nbest_predictions.json)")
    similarities = SentenceSimilarities(runs[0] / "model")
    scores = {}
    for run in runs:
        arguments = json.loads((run / "arguments.json").read_text())
        questions = {**read_questions(Path(arguments["train_file"])),
                     **read_questions(Path(arguments["validation_file"]))}
        scores[run] = {name: replay(run, questions, similarities, **setting) for name, setting in ALTERNATIVES.items()}
    print(f"{len(runs)} runs of {args.variant_dir}; mean ± standard deviation over runs, paired against as shipped\n")
    print("| alternative | gain | forced HasAns F1 | null-odds AUC | answered % | Δ gain | Δ forced | Δ AUC |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ALTERNATIVES:
        def values(key, paired=False, name=name):
            return [scores[r][name][key] - (scores[r]["as shipped"][key] if paired else 0) for r in runs]
        print(f"| {name} | {format_spread(values('gain'), 1)} | {format_spread(values('forced'), 1)} | "
              f"{format_spread(values('auc'), 3)} | {statistics.fmean(values('answered')):.0f} | "
              f"{format_spread(values('gain', True), 1)} | {format_spread(values('forced', True), 1)} | "
              f"{format_spread(values('auc', True), 3)} |")


if __name__ == "__main__":
    main()
