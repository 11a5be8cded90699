"""Could the sentence matcher say more with another sentence split or another summary of its similarities? The
untouched matcher's null-odds AUC per article for each alternative, with no training.

    python bench/matcher_variants.py --data ../shared/data/squad_v2_sample_train.json [--model build/minilm-distilbert]

What ships is the largest cosine similarity between the question and a sentence, the matcher ending a sentence at
every ".", "?" or "!" token, so "e.g.", "U.S.", "St. Paul", initials and decimals ("1.5") cut a sentence in two.
The alternatives: a split where those marks end no sentence; the closest similarity relative to the others (minus
their mean, minus the second closest), as SQuAD 2.0's unanswerable questions were written to resemble one passage
sentence; the closest of two adjacent sentences, or of sentences and pairs, for answers that need two sentences; the
whole context as one text; the question without its question mark; and two logistic probes fitted on other
articles, one over the closest, second closest and mean similarity and the number of sentences, one over those and
the elementwise products and absolute differences of the question's and the closest sentence's embeddings (each
fold of articles, dealt as `bench/real_data.py` deals them, scored by a probe fitted on the other folds, its L2
weight chosen by leaving each of their articles out in turn). The matcher is the untouched starting
encoder (what `--answer_similarity` copies before training), so the comparison needs no trained model: for every
question, each summary over its whole context is ranked as null odds (less similar = more likely unanswerable),
scored per article by ROC AUC and paired against what ships.
"""

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch
from machine import ROOT, cpu_name, use_repository_offline

use_repository_offline()
sys.path.insert(0, str(ROOT))

from abstention_features import auc, fitted_null_odds  # noqa: E402
from real_data import deal_articles, format_spread  # noqa: E402
from sentence_replays import read_questions  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402
from transformers.utils import logging as transformers_logging  # noqa: E402

from modeling_pointer_distilbert import PointerDistilBertForQuestionAnswering, window_segments  # noqa: E402
from run_qa import sentence_token_ids  # noqa: E402
from squad.metric import null_odds_auc  # noqa: E402

ABBREVIATIONS = ("mr", "mrs", "dr", "st", "jr", "sr", "vs", "etc", "no", "inc", "co", "ltd")


def every_mark(matcher, context_ids: list[int]) -> list[list[int]]:
    """The matcher's own split: a sentence ends after every sentence-ending token."""
    return window_segments([matcher.cls_id, matcher.sep_id, *context_ids, matcher.sep_id], matcher.sep_id,
                           matcher.sentence_ends)[1:]


def keeping_abbreviations(matcher, context_ids: list[int], tokens: list[str]) -> list[list[int]]:
    """A split where a "." after a single letter or a common abbreviation, or between two digits, ends no sentence."""
    sentences, sentence = [], []
    for index, token_id in enumerate(context_ids):
        sentence.append(token_id)
        if token_id in matcher.sentence_ends and not abbreviation_mark(tokens, index):
            sentences.append(sentence)
            sentence = []
    return [*sentences, sentence] if sentence else sentences


def abbreviation_mark(tokens: list[str], index: int) -> bool:
    """Whether `tokens[index]` is a "." after a single letter or a common abbreviation, or between two digits."""
    before, after = tokens[index - 1] if index else "", tokens[index + 1] if index + 1 < len(tokens) else ""
    initial_or_abbreviation = (len(before) == 1 and before.isalpha()) or before in ABBREVIATIONS
    return tokens[index] == "." and (initial_or_abbreviation or (before.isdigit() and after.isdigit()))


class Embeddings:
    """Unit-length matcher embeddings of token lists, each computed once."""

    def __init__(self, matcher):
        self.matcher, self.cache = matcher, {}

    def __call__(self, texts: list[list[int]]) -> np.ndarray:
        keys = [tuple(text) for text in texts]
        missing = [key for key in dict.fromkeys(keys) if key not in self.cache]
        if missing:
            with torch.no_grad():
                embeddings = self.matcher.embed(missing, torch.device("cpu"))
            self.cache.update(zip(missing, embeddings.numpy()))
        return np.stack([self.cache[key] for key in keys])


SHIPPED = "closest sentence (ships)"
SUMMARIES = 4  # the leading columns of probe_features: closest, second closest, mean similarity, sentence count
PROBES = {"probe over the similarity summaries": SUMMARIES, "probe over the summaries and embeddings": None}
PROBE_L2 = (1.0, 10.0, 100.0, 1000.0)


def probe_features(question: np.ndarray, sentence_embeddings: np.ndarray) -> np.ndarray:
    """Return what a probe sees of one question: the SUMMARIES, then the elementwise product and absolute
    difference of the question's and its closest sentence's unit embeddings."""
    similarity = sentence_embeddings @ question
    ranked = np.argsort(-similarity)
    closest = sentence_embeddings[ranked[0]]
    return np.r_[similarity[ranked[0]], similarity[ranked[min(1, len(ranked) - 1)]], similarity.mean(),
                 len(similarity), question * closest, np.abs(question - closest)]


def left_out_auc(features: np.ndarray, unanswerable: np.ndarray, titles: np.ndarray, training: np.ndarray,
                 l2: float) -> float:
    """Return the mean AUC on each article of the `training` rows of a probe fitted on that selection's other
    articles."""
    aucs = []
    for title in dict.fromkeys(titles[training].tolist()):
        left_out = titles == title
        fitted_on = training & ~left_out
        aucs.append(auc(unanswerable[left_out],
                        fitted_null_odds(features[fitted_on], unanswerable[fitted_on], features[left_out], l2)))
    return float(np.mean(aucs))


def probe_aucs(features: np.ndarray, unanswerable: np.ndarray, titles: np.ndarray, folds: int) -> dict[str, float]:
    """Return article title → AUC of a probe's null odds, each article's from a probe that never saw its fold: the
    articles are dealt into `folds` in order of first appearance, and each fold's probe takes the L2 weight of
    PROBE_L2 with the best `left_out_auc` on the fold's training articles."""
    order = list(dict.fromkeys(titles.tolist()))
    aucs = {}
    for held_out in deal_articles(len(order), folds):
        test = np.isin(titles, [order[index] for index in held_out])
        l2 = max(PROBE_L2, key=partial(left_out_auc, features, unanswerable, titles, ~test))
        for index in held_out:
            article = titles == order[index]
            aucs[order[index]] = auc(unanswerable[article],
                                     fitted_null_odds(features[~test], unanswerable[~test], features[article], l2))
    return aucs


def similarities(record: dict, tokenizer, matcher,
                 embed: Embeddings) -> tuple[dict[str, float], dict[str, int], np.ndarray]:
    """Return each alternative's similarity of the question to `record`'s context (higher: more likely answerable),
    how many sentences each split cuts the context into, and the question's probe features."""
    context_ids = tokenizer(record["context"], add_special_tokens=False)["input_ids"]
    question_ids = tokenizer(record["question"], add_special_tokens=False)["input_ids"]
    question = embed([question_ids])[0]
    sentences = every_mark(matcher, context_ids)
    kept = keeping_abbreviations(matcher, context_ids, tokenizer.convert_ids_to_tokens(context_ids))
    pairs = [first + second for first, second in zip(sentences, sentences[1:])] or sentences
    sentence_embeddings = embed(sentences)
    features = probe_features(question, sentence_embeddings)
    closest, second_closest, mean = features[:3]
    without_mark = embed([tokenizer(record["question"].rstrip(" ?"), add_special_tokens=False)["input_ids"]])[0]
    closest_pair = float((embed(pairs) @ question).max())
    values = {
        SHIPPED: closest,
        "closest sentence, abbreviations kept together": (embed(kept) @ question).max(),
        "closest sentence minus the mean of all": closest - mean,
        "closest sentence minus the second closest": closest - second_closest,
        "closest pair of adjacent sentences": closest_pair,
        "closest sentence or pair": max(closest, closest_pair),
        "whole context": embed([context_ids])[0] @ question,
        "closest sentence, question without '?'": (sentence_embeddings @ without_mark).max(),
    }
    return ({name: float(value) for name, value in values.items()},
            {"every mark": len(sentences), "abbreviations kept together": len(kept)},
            features)


def article_aucs(questions: dict, tokenizer, matcher,
                 folds: int) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Return alternative → article title → null-odds AUC of its negated similarity (of its null odds for the
    probes, fitted over `folds` folds of articles), and split → how many sentences it cuts the distinct contexts
    into."""
    embed = Embeddings(matcher)
    odds: dict[str, dict[str, dict[str, float]]] = {}
    answerable: dict[str, dict[str, bool]] = {}
    sentence_counts: dict[str, dict[str, int]] = {}
    features, titles = [], []
    for question_id, record in questions.items():
        values, counts, question_features = similarities(record, tokenizer, matcher, embed)
        features.append(question_features)
        titles.append(record["title"])
        for name, value in values.items():
            odds.setdefault(name, {}).setdefault(record["title"], {})[question_id] = -value
        for split, count in counts.items():
            sentence_counts.setdefault(split, {})[record["context"]] = count
        answerable.setdefault(record["title"], {})[question_id] = bool(record["answers"])
    aucs = {name: {title: null_odds_auc(article_odds, answerable[title]) for title, article_odds in by_title.items()}
            for name, by_title in odds.items()}
    unanswerable = np.array([not record["answers"] for record in questions.values()])
    for name, columns in PROBES.items():
        aucs[name] = probe_aucs(np.array(features)[:, :columns], unanswerable, np.array(titles), folds)
    return aucs, {split: sum(counts.values()) for split, counts in sentence_counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="nested SQuAD 2.0 JSON with answers")
    parser.add_argument("--model", type=Path, default=ROOT / "build" / "minilm-distilbert",
                        help="the starting sentence encoder in the DistilBERT layout")
    parser.add_argument("--folds", type=int, default=5, help="folds of articles the probes are cross-validated on")
    args = parser.parse_args()
    torch.set_num_threads(1)
    transformers_logging.set_verbosity_error()  # the start checkpoint has no head: its load report is expected
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = PointerDistilBertForQuestionAnswering.from_pretrained(
        args.model, answer_similarity=True, sentence_token_ids=sentence_token_ids(tokenizer)).eval()
    model.sentence_matcher.copy_encoder(model.distilbert)
    aucs, sentences = article_aucs(read_questions(args.data), tokenizer, model.sentence_matcher, args.folds)
    titles = list(aucs[SHIPPED])
    print(f"Untouched matcher ({args.model.name}) on {len(titles)} articles, null-odds AUC per article: mean ± sd, "
          f"paired against what ships; {cpu_name()}, one thread. The contexts fall into {sentences['every mark']} "
          f"sentences at every mark, {sentences['abbreviations kept together']} with abbreviations kept together.\n")
    print("| similarity | AUC | paired difference | higher on |")
    print("|---|---|---|---|")
    for name, by_title in aucs.items():
        differences = [by_title[title] - aucs[SHIPPED][title] for title in titles]
        print(f"| {name} | {format_spread(list(by_title.values()), 3)} | {format_spread(differences, 3)} | "
              f"{sum(difference > 0 for difference in differences)} of {len(titles)} |")


if __name__ == "__main__":
    main()
