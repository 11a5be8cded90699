"""Unanswerable training questions made from answerable ones: the same question over its passage with the sentence
that answers it cut out.

With a few thousand questions the answer verifier sees too few unanswerable ones to learn what "the passage does not
say this" looks like beyond word overlap. Cutting the answering sentence keeps the passage's topic and most of the
question's words around it, so the copy can only be told apart by reading whether the asked-for fact is still
stated: the skill abstention needs on new articles.
"""

import random
import re

import datasets

from squad._shared import _column

# A sentence may end at . ! or ? (optionally closed by a quote or bracket) followed by white space and a capital,
# digit, quote or bracket, so "e.g. the" stays inside its sentence; the word before the mark is captured to keep
# initials ("J. Smith") and the usual abbreviations of titles together with what follows.
_SENTENCE_BREAK = re.compile(r"(\w*)[.!?][\"')\]]?\s+(?=[A-Z0-9\"'(\[])")
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "gen", "col", "lt", "rev", "no", "vs", "mt"}


def sentence_spans(context: str) -> list[tuple[int, int]]:
    """Return the (start, end) character offsets of `context`'s sentences; together they cover the whole text."""
    breaks = [match for match in _SENTENCE_BREAK.finditer(context)
              if not (match.group(1).isupper() and len(match.group(1)) == 1)
              and match.group(1).lower() not in _ABBREVIATIONS]
    starts = [0] + [match.end() for match in breaks]
    ends = starts[1:] + [len(context)]
    return list(zip(starts, ends))


def without_answer_sentences(context: str, answers: dict) -> str | None:
    """Return `context` without every sentence that overlaps an answer, or None when that leaves no sentence, or
    an answer's text still occurs in what is left (then the question may still be answerable)."""
    answer_spans = [(start, start + len(text)) for text, start in zip(answers["text"], answers["answer_start"])]
    kept = [
        context[start:end]
        for start, end in sentence_spans(context)
        if not any(start < answer_end and answer_start < end for answer_start, answer_end in answer_spans)
    ]
    remainder = "".join(kept).strip()
    if not remainder or any(text.strip().lower() in remainder.lower() for text in answers["text"]):
        return None
    return remainder


def add_answer_removed_questions(dataset: datasets.Dataset, fraction: float, seed: int) -> datasets.Dataset:
    """Return `dataset` followed by unanswerable copies of `fraction` of its answerable questions (drawn with
    `seed`), each over its context without the answering sentences (see `without_answer_sentences`) and with the
    id suffixed "-answer-removed". Questions whose cut leaves nothing usable get no copy."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"the share of answerable questions to copy must be between 0 and 1, got {fraction}")
    answered = [index for index, answers in enumerate(_column(dataset, "answers")) if answers["text"]]
    chosen = sorted(random.Random(seed).sample(answered, round(fraction * len(answered))))
    copies = []
    for row in dataset.select(chosen):
        context = without_answer_sentences(row["context"], row["answers"])
        if context is not None:
            no_answers = {"text": [], "answer_start": []}
            copies.append({**row, "id": f"{row['id']}-answer-removed", "context": context, "answers": no_answers,
                           "plausible_answers": no_answers})
    if not copies:
        return dataset
    added = datasets.Dataset.from_list(copies, features=dataset.features)
    return datasets.concatenate_datasets([dataset, added])
