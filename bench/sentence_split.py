"""Does the sentence matcher need a smarter sentence split? Its null-odds AUC per article, with no training.

    python bench/sentence_split.py --data ../shared/data/squad_v2_sample_train.json [--model build/minilm-distilbert]

The matcher ends a sentence at every ".", "?" or "!" token, so "e.g.", "U.S.", "St. Paul", initials and decimals
("1.5") cut a sentence in two. The alternative keeps those together: a "." right after a single letter, after a
common abbreviation, or between two digits ends no sentence. Both matchers are the untouched starting encoder
(what `--answer_similarity` copies before training), so the comparison needs no trained model: for every question,
the largest cosine similarity between it and a sentence of its whole context, ranked as null odds (less similar =
more likely unanswerable), scored per article by ROC AUC and paired between the two splits.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from machine import ROOT, cpu_name, use_repository_offline

use_repository_offline()
sys.path.insert(0, str(ROOT))

from real_data import format_spread  # noqa: E402
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
        before, after = tokens[index - 1] if index else "", tokens[index + 1] if index + 1 < len(tokens) else ""
        initial_or_abbreviation = (len(before) == 1 and before.isalpha()) or before in ABBREVIATIONS
        abbreviation = tokens[index] == "." and (initial_or_abbreviation or (before.isdigit() and after.isdigit()))
        if token_id in matcher.sentence_ends and not abbreviation:
            sentences.append(sentence)
            sentence = []
    return [*sentences, sentence] if sentence else sentences


class Embeddings:
    """Unit-length matcher embeddings of token lists, each computed once."""

    def __init__(self, matcher):
        self.matcher, self.cache = matcher, {}

    def __call__(self, texts: list[list[int]]) -> np.ndarray:
        keys = [tuple(text) for text in texts]
        missing = [key for key in dict.fromkeys(keys) if key not in self.cache]
        if missing:
            wrapped = [[self.matcher.cls_id, *key[: self.matcher.max_segment_length], self.matcher.sep_id]
                       for key in missing]
            with torch.no_grad():
                self.cache.update(zip(missing, self.matcher.embed(wrapped, torch.device("cpu")).numpy()))
        return np.stack([self.cache[key] for key in keys])


def article_aucs(questions: dict, tokenizer, matcher) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Return article title → split name → null-odds AUC of the negated closest-sentence similarity, and split
    name → how many sentences it cuts the distinct contexts into."""
    embed = Embeddings(matcher)
    sentence_counts: dict[str, dict[str, int]] = {}
    odds: dict[str, dict[str, dict[str, float]]] = {}
    answerable: dict[str, dict[str, bool]] = {}
    for question_id, record in questions.items():
        context_ids = tokenizer(record["context"], add_special_tokens=False)["input_ids"]
        tokens = tokenizer.convert_ids_to_tokens(context_ids)
        question = embed([tokenizer(record["question"], add_special_tokens=False)["input_ids"]])[0]
        splits = {"every mark": every_mark(matcher, context_ids),
                  "keeping abbreviations": keeping_abbreviations(matcher, context_ids, tokens)}
        for name, sentences in splits.items():
            closest = float((embed(sentences) @ question).max())
            sentence_counts.setdefault(name, {})[record["context"]] = len(sentences)
            odds.setdefault(record["title"], {}).setdefault(name, {})[question_id] = -closest
        answerable.setdefault(record["title"], {})[question_id] = bool(record["answers"])
    aucs = {title: {name: null_odds_auc(split_odds, answerable[title]) for name, split_odds in by_split.items()}
            for title, by_split in odds.items()}
    return aucs, {name: sum(counts.values()) for name, counts in sentence_counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="nested SQuAD 2.0 JSON with answers")
    parser.add_argument("--model", type=Path, default=ROOT / "build" / "minilm-distilbert",
                        help="the starting sentence encoder in the DistilBERT layout")
    args = parser.parse_args()
    torch.set_num_threads(1)
    transformers_logging.set_verbosity_error()  # the start checkpoint has no head: its load report is expected
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = PointerDistilBertForQuestionAnswering.from_pretrained(
        args.model, answer_similarity=True, sentence_token_ids=sentence_token_ids(tokenizer)).eval()
    model.sentence_matcher.copy_encoder(model.distilbert)
    aucs, sentences = article_aucs(read_questions(args.data), tokenizer, model.sentence_matcher)
    print(f"Untouched matcher ({args.model.name}), null-odds AUC per article; {cpu_name()}, one thread; the "
          f"contexts cut into {sentences['every mark']} sentences at every mark, "
          f"{sentences['keeping abbreviations']} keeping abbreviations\n")
    print("| article | every mark | keeping abbreviations | difference |")
    print("|---|---|---|---|")
    for title, by_split in aucs.items():
        print(f"| {title} | {by_split['every mark']:.3f} | {by_split['keeping abbreviations']:.3f} | "
              f"{by_split['keeping abbreviations'] - by_split['every mark']:+.3f} |")
    differences = [by_split["keeping abbreviations"] - by_split["every mark"] for by_split in aucs.values()]
    print(f"| mean ± sd | {format_spread([a['every mark'] for a in aucs.values()], 3)} | "
          f"{format_spread([a['keeping abbreviations'] for a in aucs.values()], 3)} | "
          f"{format_spread(differences, 3)} (higher on {sum(d > 0 for d in differences)} of {len(differences)}) |")


if __name__ == "__main__":
    main()
