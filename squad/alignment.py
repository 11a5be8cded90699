"""Answers checked against their text: SQuAD's `answer_start` is sometimes a character or two off, and an answer
whose text is not where it says must never become a label."""

import logging
from dataclasses import dataclass, field

import datasets

from squad._shared import _column, _few

logger = logging.getLogger(__name__)


@dataclass
class AlignmentReport:
    """What `align_answers` found: answers checked, realigned and unalignable, and the ids concerned."""

    checked: int = 0
    realigned: int = 0
    unalignable: int = 0
    unalignable_ids: list[str] = field(default_factory=list)
    dropped_ids: list[str] = field(default_factory=list)


def aligned_answer_start(context: str, text: str, answer_start: int, max_shift: int) -> int | None:
    """Return where `text` really starts in `context`: `answer_start` itself, the nearest occurrence within
    `max_shift` characters of it, or None when there is none."""
    if context.startswith(text, answer_start):
        return answer_start
    nearby = range(max(0, answer_start - max_shift), answer_start + max_shift + 1)
    found = [start for start in nearby if context.startswith(text, start)]
    return min(found, key=lambda start: abs(start - answer_start), default=None)


def align_answers(dataset: datasets.Dataset, max_shift: int = 8) -> tuple[datasets.Dataset, AlignmentReport]:
    """Return the dataset with every answer moved to the nearest occurrence of its text within `max_shift`
    characters of its `answer_start`, and a report. Answers not found there are dropped from the example; an
    answerable example that loses them all is dropped entirely, as a no-answer example would teach the model that
    its question has no answer."""
    report = AlignmentReport()
    kept_rows, kept_answers = [], []
    columns = zip(_column(dataset, "context"), _column(dataset, "id"), _column(dataset, "answers"))
    for row, (context, question_id, answers) in enumerate(columns):
        aligned = _aligned(context, answers, max_shift, report)
        if len(aligned["text"]) < len(answers["text"]):
            report.unalignable_ids.append(question_id)
        if answers["text"] and not aligned["text"]:
            report.dropped_ids.append(question_id)
            continue
        kept_rows.append(row)
        kept_answers.append(aligned)
    if report.unalignable:
        logger.warning(
            "%d of %d answers are not found within %d characters of their answer_start and are not used as labels; "
            "%d examples lost every answer and are dropped. Ids: %s",
            report.unalignable, report.checked, max_shift, len(report.dropped_ids), _few(report.unalignable_ids, 20),
        )
    if report.realigned:
        logger.info("realigned %d of %d answers to where their text starts", report.realigned, report.checked)
    if not report.realigned and not report.unalignable:
        return dataset, report
    aligned_dataset = dataset.select(kept_rows).remove_columns("answers")
    return aligned_dataset.add_column("answers", kept_answers, feature=dataset.features["answers"]), report


def _aligned(context: str, answers: dict, max_shift: int, report: AlignmentReport) -> dict:
    """Return `answers` with each start aligned to its text and unfindable answers left out, counted in `report`."""
    texts, starts = [], []
    for text, start in zip(answers["text"], answers["answer_start"]):
        report.checked += 1
        aligned = aligned_answer_start(context, text, start, max_shift)
        if aligned is None:
            report.unalignable += 1
            continue
        report.realigned += aligned != start
        texts.append(text)
        starts.append(aligned)
    return {"text": texts, "answer_start": starts}
