"""SQuAD data in, answers and scores out: loading, answer alignment, features, post-processing and the metric.

Every computing function here is pure (plain rows, a tokenizer, numbers in; values out) so `run_qa.py`,
`trainer_qa.py`, the tests and the benchmarks call the same code. File reading and writing stay at the edges:
`load_squad_file`, `write_predictions` and the `score` command (`python utils_qa.py score DATA PREDICTIONS`).
"""

import argparse
import bisect
import collections
import csv
import json
import logging
import re
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np

logger = logging.getLogger(__name__)

SQUAD_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "title": datasets.Value("string"),
        "context": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answers": datasets.Sequence({"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}),
    }
)

# null_odds of an example whose windows hold no valid span at all: it can only answer "", whatever the threshold.
# A finite stand-in for +inf keeps null_odds.json strict JSON and sorts such examples last in the threshold search.
NULL_ODDS_WITHOUT_SPAN = 1e9

_FLAT_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
_MAX_IDS_SHOWN = 5


class DataFormatError(ValueError):
    """Input data that cannot be read as SQuAD; the message names the file, the record and the field, and the fix."""


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------


def load_squad_file(path: str | Path) -> datasets.Dataset:
    """Return the questions of one local file as a `Dataset` with `SQUAD_FEATURES`, after strict validation.

    Accepted layouts, told apart by content rather than by name:

    - the official nested SQuAD JSON (`{"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}`), v1.1 or
      v2.0 (v2.0 questions carry `is_impossible` and empty `answers`);
    - flat rows with `id`, `title` (optional), `context`, `question` and the answers as either an `answers` field
      (`{"text": [...], "answer_start": [...]}`, a list of `{"text", "answer_start"}` objects, or that JSON as a string,
      which is how a CSV cell carries it) or two columns `answer_text` and `answer_start` holding one answer each
      (an empty `answer_text` means unanswerable). Rows come from a `.json` list (or `{"data": [rows]}`), `.jsonl`,
      `.csv` (UTF-8, header row) or `.parquet`. A `.json` file holding JSON Lines is read as JSON Lines.

    Questions without answers (unlabelled test files, SQuAD 2.0 unanswerable questions) get empty answers.
    Integer ids are turned into strings.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file; check the path")
    suffix = path.suffix.lower()
    if suffix not in _FLAT_SUFFIXES:
        raise DataFormatError(
            f"{path}: unsupported file type '{suffix}'; use .json (official SQuAD or rows), .jsonl, .csv or .parquet"
        )
    if suffix == ".parquet":
        rows = _validated_flat_rows(path, _parquet_records(path))
    elif suffix == ".csv":
        rows = _validated_flat_rows(path, _csv_records(path))
    else:
        rows = _rows_from_json_text(path, _read_text(path), json_lines=suffix == ".jsonl")
    if not rows:
        raise DataFormatError(f"{path}: holds no questions; check that it is the right file")
    _check_unique_ids(path, rows)
    columns = {name: [row[name] for row, _ in rows] for name in SQUAD_FEATURES}
    dataset = datasets.Dataset.from_dict(columns, features=SQUAD_FEATURES)
    unanswerable = sum(1 for answers in columns["answers"] if not answers["text"])
    logger.info("%s: %d questions, %d without answers", path, len(dataset), unanswerable)
    return dataset


def load_qa_datasets(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_file: str | Path | None = None,
    validation_file: str | Path | None = None,
    test_file: str | Path | None = None,
    cache_dir: str | None = None,
    token: str | bool | None = None,
) -> datasets.DatasetDict:
    """Return the splits (among "train", "validation", "test") from the Hub and/or local files, in one schema.

    A local file replaces the Hub split of the same name, so a Hub dataset can be evaluated on a local file.
    Hub splits are trusted as published and only conformed to `SQUAD_FEATURES`; local files are validated.
    """
    splits = {}
    if dataset_name is not None:
        splits.update(_load_hub_splits(dataset_name, dataset_config_name, cache_dir, token))
    for split, path in (("train", train_file), ("validation", validation_file), ("test", test_file)):
        if path is not None:
            splits[split] = load_squad_file(path)
    if not splits:
        raise ValueError("no data given: pass dataset_name or at least one of train_file, validation_file, test_file")
    return datasets.DatasetDict(splits)


def has_unanswerable(dataset: datasets.Dataset) -> bool:
    """True when any example has no answer, i.e. the data is SQuAD 2.0 style (or unlabelled)."""
    answers = dataset.with_format("arrow")["answers"].combine_chunks()
    answer_counts = answers.field("text").value_lengths().to_numpy(zero_copy_only=False)  # (num_examples,)
    return bool((answer_counts == 0).any())


def _load_hub_splits(name, config_name, cache_dir, token) -> dict[str, datasets.Dataset]:
    """Return the Hub dataset's train/validation/test splits conformed to `SQUAD_FEATURES`."""
    try:
        loaded = datasets.load_dataset(name, config_name, cache_dir=cache_dir, token=token)
    except Exception as error:  # the Hub client raises many types; the user needs one actionable line
        raise DataFormatError(
            f"could not load dataset '{name}' (config {config_name!r}) from the Hugging Face Hub: "
            f"{type(error).__name__}: {error}. Without internet, pass local files instead "
            "(--train_file / --validation_file / --test_file)"
        ) from None
    wanted = [split for split in loaded if split in ("train", "validation", "test")]
    return {split: _conform_hub_split(loaded[split], name, split) for split in wanted}


def _conform_hub_split(split_data: datasets.Dataset, name: str, split: str) -> datasets.Dataset:
    """Return a Hub split with exactly our columns and types, or say which column is missing."""
    missing = [column for column in ("id", "context", "question", "answers") if column not in split_data.column_names]
    if missing:
        raise DataFormatError(
            f"dataset '{name}', split '{split}': missing column(s) {missing}; a SQuAD-style dataset needs "
            "id, context, question and answers {text, answer_start}"
        )
    if "title" not in split_data.column_names:
        split_data = split_data.add_column("title", [""] * len(split_data))
    try:
        return split_data.select_columns(list(SQUAD_FEATURES)).cast(SQUAD_FEATURES)
    except (ValueError, TypeError) as error:
        raise DataFormatError(
            f"dataset '{name}', split '{split}': columns do not match the SQuAD schema ({error}); "
            "answers must be {text: list of strings, answer_start: list of ints}"
        ) from None


def _read_text(path: Path) -> str:
    """Return the file's text, or a DataFormatError naming the byte that is not UTF-8."""
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: tolerate the byte-order mark some editors write
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not UTF-8 text (byte {error.start}); save the file as UTF-8") from None


def _rows_from_json_text(path: Path, text: str, json_lines: bool) -> list[tuple[dict, str]]:
    """Return validated rows from JSON text: official nested SQuAD, a list of rows, or JSON Lines."""
    if not json_lines:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            if error.msg != "Extra data" or not _first_line_is_object(text):
                raise _json_error(path, error) from None
            json_lines = True  # one object per line: JSON Lines saved as .json
    if json_lines:
        return _validated_flat_rows(path, _json_line_records(path, text))
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        entries = document["data"]
        if entries and isinstance(entries[0], dict) and "paragraphs" in entries[0]:
            return list(_nested_rows(path, entries))
        return _validated_flat_rows(path, ((row, f"data[{index}]") for index, row in enumerate(entries)))
    if isinstance(document, list):
        return _validated_flat_rows(path, ((row, f"record {index}") for index, row in enumerate(document)))
    raise DataFormatError(
        f"{path}: top level is a {type(document).__name__}; expected the official SQuAD layout "
        '{"data": [{"title", "paragraphs": [...]}]} or a list of rows with id, context, question, answers'
    )


def _first_line_is_object(text: str) -> bool:
    """True when the first non-blank line is a whole JSON object on its own, as in JSON Lines."""
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    try:
        return isinstance(json.loads(first_line), dict)
    except json.JSONDecodeError:
        return False


def _json_error(path: Path, error: json.JSONDecodeError, line_offset: int = 0) -> DataFormatError:
    """Return a DataFormatError that points at the line and column where the JSON breaks."""
    return DataFormatError(
        f"{path}: malformed JSON at line {error.lineno + line_offset}, column {error.colno}: {error.msg}; "
        "fix the file there (a missing comma, quote or bracket is the usual cause)"
    )


def _json_line_records(path: Path, text: str):
    """Yield `(record, where)` for each non-blank line of a JSON Lines text."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield json.loads(line), f"line {number}"
            except json.JSONDecodeError as error:
                raise _json_error(path, error, line_offset=number - 1) from None


def _csv_records(path: Path):
    """Yield `(record, where)` for each data row of a CSV file with a header row."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            for row in reader:
                if None in row:
                    raise DataFormatError(
                        f"{path}: line {reader.line_num}: more cells than header columns; quote cells holding commas"
                    )
                yield row, f"line {reader.line_num}"
        except UnicodeDecodeError as error:
            raise DataFormatError(f"{path}: not UTF-8 text (byte {error.start}); save the file as UTF-8") from None
        except csv.Error as error:
            raise DataFormatError(f"{path}: line {reader.line_num}: malformed CSV ({error}); fix the quoting") from None


def _parquet_records(path: Path):
    """Yield `(record, where)` for each row of a Parquet file."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises ArrowInvalid/OSError variants for unreadable files
        raise DataFormatError(
            f"{path}: not a readable Parquet file ({error}); rewrite it with pandas or pyarrow"
        ) from None
    for index, row in enumerate(table.to_pylist()):
        yield row, f"row {index}"


def _nested_rows(path: Path, articles: list):
    """Yield `(row, where)` for every question of the official nested SQuAD layout, validating as it goes."""
    for article_index, article in enumerate(articles):
        where_article = f"data[{article_index}]"
        paragraphs = _expect(path, where_article, article, "paragraphs", list)
        title = article.get("title", "")
        if not isinstance(title, str):
            raise _field_error(path, where_article, "title", f"must be a string, got {type(title).__name__}")
        for paragraph_index, paragraph in enumerate(paragraphs):
            where_paragraph = f"{where_article}.paragraphs[{paragraph_index}]"
            context = _expect(path, where_paragraph, paragraph, "context", str)
            qas = _expect(path, where_paragraph, paragraph, "qas", list)
            for question_index, qa in enumerate(qas):
                where = f"{where_paragraph}.qas[{question_index}]"
                if not isinstance(qa, dict):
                    raise _field_error(path, where, "qas", f"each question must be an object, got {type(qa).__name__}")
                record = {"id": qa.get("id"), "title": title, "context": context, "question": qa.get("question")}
                row = _validated_row(path, where, record, qa.get("answers", []), qa.get("is_impossible"), "id" in qa)
                yield row, _where_with_id(where, row["id"])


def _validated_flat_rows(path: Path, records) -> list[tuple[dict, str]]:
    """Return `(row, where)` for flat records, reading answers from `answers` or `answer_text`/`answer_start`."""
    rows = []
    for record, where in records:
        if not isinstance(record, dict):
            raise DataFormatError(
                f"{path}: {where}: expected an object with id, context, question; got {type(record).__name__}"
            )
        where = _where_with_id(where, record.get("id"))
        answers = _flat_answers(path, where, record)
        rows.append((_validated_row(path, where, record, answers, record.get("is_impossible"), "id" in record), where))
    return rows


def _flat_answers(path: Path, where: str, record: dict):
    """Return a flat record's answers in any accepted layout, empty when it carries none."""
    if "answers" in record and "answer_text" in record:
        raise _field_error(path, where, "answers", "given twice (answers and answer_text); keep one of the two layouts")
    if "answer_text" in record:
        text, start = record.get("answer_text"), record.get("answer_start")
        if text is None or text == "":
            return []
        if isinstance(start, str):
            start = _parse_int(path, where, "answer_start", start)
        return [{"text": text, "answer_start": start}]
    answers = record.get("answers")
    if answers is None or answers == "":
        return []
    if isinstance(answers, str):
        try:
            answers = json.loads(answers)
        except json.JSONDecodeError as error:
            problem = f"is not valid JSON ({error.msg}, column {error.colno}); write it as a JSON object"
            raise _field_error(path, where, "answers", problem) from None
    return answers


def _validated_row(path: Path, where: str, record: dict, answers, is_impossible, has_id: bool) -> dict:
    """Return a row in our schema or raise a DataFormatError naming the first bad field."""
    if not has_id:
        raise _field_error(path, where, "id", "is missing; give every question a unique id")
    question_id = record["id"]
    if isinstance(question_id, int) and not isinstance(question_id, bool):
        question_id = str(question_id)
    if not isinstance(question_id, str) or not question_id:
        raise _field_error(path, where, "id", f"must be a non-empty string, got {question_id!r}")
    where = _where_with_id(where, question_id)
    title = record.get("title") or ""
    if not isinstance(title, str):
        raise _field_error(path, where, "title", f"must be a string, got {type(title).__name__}")
    context = _required_text(path, where, record, "context")
    question = _required_text(path, where, record, "question")
    texts, starts = _validated_answers(path, where, answers, context)
    if is_impossible is True and texts:
        raise _field_error(
            path, where, "answers", "is_impossible is true but answers is not empty; move them to plausible_answers"
        )
    return {
        "id": question_id,
        "title": title,
        "context": context,
        "question": question,
        "answers": {"text": texts, "answer_start": starts},
    }


def _validated_answers(path: Path, where: str, answers, context: str) -> tuple[list[str], list[int]]:
    """Return `(texts, starts)` from either answer layout, with types and ranges checked."""
    if isinstance(answers, dict):
        texts, starts = answers.get("text"), answers.get("answer_start")
        if not isinstance(texts, list) or not isinstance(starts, list):
            raise _field_error(path, where, "answers", "must hold two lists, text and answer_start")
        if len(texts) != len(starts):
            raise _field_error(
                path, where, "answers",
                f"has {len(texts)} text(s) but {len(starts)} answer_start(s); give one start per answer text",
            )
    elif isinstance(answers, list):
        if not all(isinstance(answer, dict) for answer in answers):
            raise _field_error(path, where, "answers", 'must be a list of {"text", "answer_start"} objects')
        texts = [answer.get("text") for answer in answers]
        starts = [answer.get("answer_start") for answer in answers]
    else:
        raise _field_error(path, where, "answers", f"must be a list or an object, got {type(answers).__name__}")
    for index, (text, start) in enumerate(zip(texts, starts)):
        answer_field = f"answers[{index}]"
        if not isinstance(text, str) or not text.strip():
            raise _field_error(
                path, where, f"{answer_field}.text",
                f"must be a non-empty string, got {text!r}; unanswerable questions take an empty answers list",
            )
        if not isinstance(start, int) or isinstance(start, bool):
            raise _field_error(path, where, f"{answer_field}.answer_start", f"must be an integer, got {start!r}")
        if not 0 <= start < len(context):
            raise _field_error(
                path, where, f"{answer_field}.answer_start",
                f"{start} is outside the context (length {len(context)}); give the answer's character offset",
            )
    return list(texts), list(starts)


def _required_text(path: Path, where: str, record: dict, name: str) -> str:
    """Return `record[name]` when it is a non-blank string, else raise naming the field."""
    if name not in record:
        raise _field_error(path, where, name, f"is missing; every question needs a {name}")
    value = record[name]
    if not isinstance(value, str):
        raise _field_error(path, where, name, f"must be a string, got {type(value).__name__} {value!r:.40}")
    if not value.strip():
        raise _field_error(path, where, name, f"is empty; give the {name} text")
    return value


def _expect(path: Path, where: str, container, name: str, kind: type):
    """Return `container[name]` when it exists with type `kind`, else raise naming the field."""
    if not isinstance(container, dict) or name not in container:
        raise _field_error(path, where, name, "is missing; see the official SQuAD layout")
    value = container[name]
    if not isinstance(value, kind):
        raise _field_error(path, where, name, f"must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _parse_int(path: Path, where: str, name: str, value: str) -> int:
    """Return the integer written in a text cell, or raise naming the field."""
    try:
        return int(value)
    except ValueError:
        raise _field_error(path, where, name, f"must be an integer, got {value!r}") from None


def _check_unique_ids(path: Path, rows: list[tuple[dict, str]]) -> None:
    """Raise a DataFormatError naming both records when two questions share an id."""
    first_seen = {}
    for index, (row, where) in enumerate(rows):
        earlier = first_seen.setdefault(row["id"], index)
        if earlier != index:
            problem = f"duplicates the id of {rows[earlier][1]}; ids must be unique, rename one"
            raise _field_error(path, where, "id", problem)


def _where_with_id(where: str, question_id) -> str:
    """Return the record location with its id, once."""
    if not isinstance(question_id, (str, int)) or isinstance(question_id, bool) or "(id " in where:
        return where
    return f"{where} (id '{question_id}')"


def _field_error(path: Path, where: str, field_name: str, problem: str) -> DataFormatError:
    """Return the one error shape every validation failure uses: file, record, field, problem and fix."""
    return DataFormatError(f"{path}: {where}: field '{field_name}' {problem}")


# ----------------------------------------------------------------------------------------------------------------
# Answer alignment
# ----------------------------------------------------------------------------------------------------------------


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
    window_end = min(len(context), answer_start + max_shift + len(text))
    best = None
    found = context.find(text, max(0, answer_start - max_shift), window_end)
    while found != -1:
        if best is None or abs(found - answer_start) < abs(best - answer_start):
            best = found
        found = context.find(text, found + 1, window_end)
    return best


def align_answers(dataset: datasets.Dataset, max_shift: int = 8) -> tuple[datasets.Dataset, AlignmentReport]:
    """Return the dataset with every answer's `answer_start` checked against its text, and a report.

    SQuAD answers are sometimes a character or two off; those are moved to the nearest occurrence of the text
    within `max_shift` characters. Answers whose text cannot be found there are dropped from the example so they
    never become labels. An answerable example that loses all of its answers is dropped entirely rather than
    turned into a no-answer example, which would teach the model that the question has no answer.
    """
    contexts = _column(dataset, "context")
    ids = _column(dataset, "id")
    all_answers = _column(dataset, "answers")
    report = AlignmentReport()
    kept_rows, new_answers = [], []
    for row, (context, question_id, answers) in enumerate(zip(contexts, ids, all_answers)):
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
        if len(texts) < len(answers["text"]):
            report.unalignable_ids.append(question_id)
        if answers["text"] and not texts:
            report.dropped_ids.append(question_id)
            continue
        kept_rows.append(row)
        new_answers.append({"text": texts, "answer_start": starts})
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
    aligned = dataset.select(kept_rows).remove_columns("answers")
    return aligned.add_column("answers", new_answers, feature=dataset.features["answers"]), report


# ----------------------------------------------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------------------------------------------


def prepare_train_features(
    examples: dict,
    tokenizer,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    pad_to_max_length: bool = False,
) -> dict:
    """Return training windows (the tokenizer's model inputs) with `start_positions`/`end_positions` labels.

    A batched `Dataset.map` function (bind the settings with `functools.partial`). A context longer than a window is
    split into overlapping windows `doc_stride` tokens apart. The label is the token span of the first answer when
    the window holds all of it, else the [CLS] token, as for unanswerable questions.
    """
    encoded = _tokenize_windows(examples, tokenizer, max_seq_length, doc_stride, max_query_length, pad_to_max_length)
    context_index = _context_sequence_index(tokenizer)
    first_answers = [_first_answer_char_span(answers) for answers in examples["answers"]]
    start_positions, end_positions = [], []
    for window, example_index in enumerate(encoded["overflow_to_sample_mapping"]):
        cls_index = _cls_index(encoded["input_ids"][window], tokenizer)
        char_span = first_answers[example_index]
        token_span = None
        if char_span is not None:
            token_span = answer_token_span(
                encoded["offset_mapping"][window], encoded.sequence_ids(window), context_index, char_span
            )
        start, end = token_span or (cls_index, cls_index)
        start_positions.append(start)
        end_positions.append(end)
    features = _model_inputs(encoded, tokenizer)
    features["start_positions"] = start_positions
    features["end_positions"] = end_positions
    return features


def prepare_eval_features(
    examples: dict,
    tokenizer,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    pad_to_max_length: bool = False,
) -> dict:
    """Return evaluation windows with `example_id` and an `offset_mapping` that is None outside the context.

    The same windows as `prepare_train_features`; `select_answers` uses the offsets to cut answers out of the
    context, and the None entries to keep the question and special tokens out of every answer.
    """
    encoded = _tokenize_windows(examples, tokenizer, max_seq_length, doc_stride, max_query_length, pad_to_max_length)
    context_index = _context_sequence_index(tokenizer)
    example_ids, offset_mappings = [], []
    for window, example_index in enumerate(encoded["overflow_to_sample_mapping"]):
        example_ids.append(examples["id"][example_index])
        offsets = encoded["offset_mapping"][window]
        first, last = context_token_range(encoded.sequence_ids(window), context_index) or (len(offsets), len(offsets))
        offset_mappings.append([None] * first + offsets[first : last + 1] + [None] * (len(offsets) - last - 1))
    features = _model_inputs(encoded, tokenizer)
    features["example_id"] = example_ids
    features["offset_mapping"] = offset_mappings
    return features


def context_token_range(sequence_ids: list, context_index: int) -> tuple[int, int] | None:
    """Return the first and last token of a window's context (one run of tokens with sequence id `context_index`),
    or None when the window has no context token (a blank context)."""
    if context_index not in sequence_ids:
        return None
    first = sequence_ids.index(context_index)
    return first, len(sequence_ids) - 1 - sequence_ids[::-1].index(context_index)


def answer_token_span(
    offsets: list, sequence_ids: list, context_index: int, char_span: tuple[int, int]
) -> tuple[int, int] | None:
    """Return the first and last token of the answer `char_span` (end exclusive), or None when the window's context
    does not hold all of it."""
    context_range = context_token_range(sequence_ids, context_index)
    if context_range is None:
        return None
    first, last = context_range
    answer_start, answer_end = char_span
    if offsets[first][0] > answer_start or offsets[last][1] < answer_end:
        return None
    # Context offsets rise monotonically, so both ends are binary searches: the first token that ends after the
    # answer starts, and the last token that starts before the answer ends.
    start_token = bisect.bisect_right(offsets, answer_start, lo=first, hi=last + 1, key=lambda pair: pair[1])
    end_token = bisect.bisect_left(offsets, answer_end, lo=first, hi=last + 1, key=lambda pair: pair[0]) - 1
    return start_token, end_token


def _first_answer_char_span(answers: dict) -> tuple[int, int] | None:
    """Return the first answer's character span without surrounding whitespace, or None for no (or a blank) answer."""
    if not answers["text"] or not answers["text"][0].strip():
        return None
    text, start = answers["text"][0], answers["answer_start"][0]
    start += len(text) - len(text.lstrip())
    return start, start + len(text.strip())


def _tokenize_windows(examples, tokenizer, max_seq_length, doc_stride, max_query_length, pad_to_max_length):
    """Return the tokenizer's windows over question + context, with offsets and the window → example mapping.

    Tokenizers that pad on the left take the context first, so the truncated side is always the context.
    """
    budget = question_token_budget(tokenizer, max_seq_length, doc_stride, max_query_length)
    questions, truncated = truncate_questions([q.lstrip() for q in examples["question"]], tokenizer, budget)
    if truncated:
        logger.warning(
            "truncated %d question(s) to %d tokens (max_query_length=%d, max_seq_length=%d, doc_stride=%d)",
            truncated, budget, max_query_length, max_seq_length, doc_stride,
        )
    pad_on_right = tokenizer.padding_side == "right"
    return tokenizer(
        questions if pad_on_right else examples["context"],
        examples["context"] if pad_on_right else questions,
        truncation="only_second" if pad_on_right else "only_first",
        max_length=max_seq_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length" if pad_to_max_length else False,
    )


def question_token_budget(tokenizer, max_seq_length: int, doc_stride: int, max_query_length: int) -> int:
    """Return how many question tokens a window can hold: `max_query_length`, or less when the context part of a
    window would otherwise not exceed `doc_stride` (the tokenizer refuses a stride as long as the context part)."""
    room = max_seq_length - tokenizer.num_special_tokens_to_add(pair=True) - doc_stride - 1
    if room < 1:
        raise ValueError(
            f"max_seq_length={max_seq_length} leaves no room for a question with doc_stride={doc_stride}; "
            "lower doc_stride or raise max_seq_length"
        )
    return min(max_query_length, room)


def truncate_questions(questions: list[str], tokenizer, max_tokens: int) -> tuple[list[str], int]:
    """Return the questions cut to at most `max_tokens` tokens each, and how many were cut.

    Questions are cut as text at a token boundary, so the windows keep the tokenizer's own offsets. WordPiece gives
    back the same leading tokens for a cut text; the re-check covers tokenizers whose merges shift at the cut.
    """
    result, truncated = list(questions), set()
    pending = list(range(len(questions)))
    while pending:
        encoded = tokenizer([result[i] for i in pending], add_special_tokens=False, return_offsets_mapping=True)
        too_long = [(i, offsets) for i, offsets in zip(pending, encoded["offset_mapping"]) if len(offsets) > max_tokens]
        for i, offsets in too_long:
            # Each pass shortens the text, so the loop ends even where several tokens share one character.
            result[i] = result[i][: min(offsets[max_tokens - 1][1], len(result[i]) - 1)]
        truncated.update(i for i, _ in too_long)
        pending = [i for i, _ in too_long]
    return result, len(truncated)


def _context_sequence_index(tokenizer) -> int:
    """Return which of the two tokenized sequences is the context (0 when the tokenizer pads on the left)."""
    return 1 if tokenizer.padding_side == "right" else 0


def _cls_index(input_ids: list[int], tokenizer) -> int:
    """Return the position of [CLS], the label of windows without the answer (not 0 after left padding)."""
    if tokenizer.cls_token_id is None or tokenizer.cls_token_id not in input_ids:
        return 0
    return input_ids.index(tokenizer.cls_token_id)


def _model_inputs(encoded, tokenizer) -> dict:
    """Return only the inputs the tokenizer's model takes (DistilBERT-style models take no token_type_ids)."""
    return {name: encoded[name] for name in tokenizer.model_input_names if name in encoded}


# ----------------------------------------------------------------------------------------------------------------
# Post-processing
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class QAPredictions:
    """Answers chosen from span logits.

    `answers` is the final text per id ("" for no answer); `nbest` the best spans per id, best first, each
    `{"text", "probability", "start_logit", "end_logit", "start", "end"}` with character offsets `start`/`end` into
    the context (SQuAD 2.0 adds the null answer: text "", offsets 0/0, the [CLS] logits); `null_odds` is null score
    minus best span score (SQuAD 2.0 only); `non_null_answers` the best span's text whatever the null score says.
    """

    answers: dict[str, str]
    nbest: Mapping[str, list[dict]]
    null_odds: dict[str, float] | None
    non_null_answers: dict[str, str] = field(default_factory=dict)


class NBestLists(Mapping):
    """`{id: n-best list}` whose lists are built on the first read, all at once.

    Choosing answers needs only the best candidate of each example; the ~n_best_size dictionaries per question are
    what nbest_predictions.json and the pipeline read, so their texts, offsets and probabilities are made only when
    someone reads them. `candidates` are `(feature, start, end, score)` arrays grouped by example
    (`bounds[e]:bounds[e + 1]`) and best first; `null` is `(feature, score)` per example for SQuAD 2.0, else None.
    The lists are shared between reads: treat them as read-only.
    """

    def __init__(self, example_ids, contexts, candidates, bounds, null, offsets, start_logits, end_logits):
        self._row_of = {question_id: row for row, question_id in enumerate(example_ids)}
        self._contexts = contexts
        self._inputs = (candidates, bounds, null, offsets, start_logits, end_logits)
        self._lists = None

    def __getitem__(self, question_id: str) -> list[dict]:
        row = self._row_of[question_id]
        if self._lists is None:
            self._lists = self._build()
        return self._lists[row]

    def __iter__(self):
        return iter(self._row_of)

    def __len__(self) -> int:
        return len(self._row_of)

    def __repr__(self) -> str:
        return f"NBestLists({len(self)} questions)"

    def _build(self) -> list[list[dict]]:
        """Return every example's n-best list, in example order."""
        bounds, (first_char, last_char, probability, start_logit, end_logit) = _nbest_columns(*self._inputs)
        example = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds)).tolist()
        contexts = self._contexts
        entries = [
            {"text": contexts[row][begin:stop], "probability": p, "start_logit": s, "end_logit": e, "start": begin,
             "end": stop}
            for row, begin, stop, p, s, e in zip(
                example, first_char.tolist(), last_char.tolist(), probability.tolist(), start_logit.tolist(),
                end_logit.tolist(),
            )
        ]
        bounds = bounds.tolist()
        return [entries[bounds[row] : bounds[row + 1]] for row in range(len(bounds) - 1)]


def _nbest_columns(candidates, bounds, null, offsets, start_logits, end_logits):
    """Return `(bounds, (first_char, last_char, probability, start_logit, end_logit))` of every n-best entry.

    For SQuAD 2.0 the null answer joins each list as one more entry ([CLS] of its lowest-scoring window, placed
    after spans of equal score); probabilities are a softmax over each list.
    """
    feature, start, end, score = candidates  # (C,) each
    num_examples = len(bounds) - 1
    example = np.repeat(np.arange(num_examples), np.diff(bounds))  # (C,)
    if null is not None:
        null_feature, null_score = null  # (E,) each
        ahead = np.bincount(example, weights=score >= null_score[example], minlength=num_examples)  # (E,)
        position = bounds[:-1] + ahead.astype(np.int64)
        feature, score = np.insert(feature, position, null_feature), np.insert(score, position, null_score)
        start, end = np.insert(start, position, 0), np.insert(end, position, 0)
        example = np.insert(example, position, np.arange(num_examples))
        bounds = bounds + np.arange(num_examples + 1)
    nonempty = bounds[1:] > bounds[:-1]  # (E,)
    top_score = np.zeros(num_examples)
    top_score[nonempty] = score[bounds[:-1][nonempty]]  # lists are sorted, so the first score is the largest
    weight = np.exp(score - top_score[example])  # (C,)
    probability = weight / np.bincount(example, weights=weight, minlength=num_examples)[example]  # (C,)
    first_char, last_char = offsets.char_span(feature, start, end)
    return bounds, (first_char, last_char, probability, start_logits[feature, start], end_logits[feature, end])


@dataclass(frozen=True)
class ContextOffsets:
    """Which tokens of each window belong to the context, and where they sit in its text.

    `in_context` is dense (num_features, width); the character offsets stay flat, one pair per context token, and
    are looked up only for the tokens that end up in an n-best list.
    """

    in_context: np.ndarray  # (F, W) bool
    first_token: np.ndarray  # (F,) flat index of each window's first token
    pair_of_token: np.ndarray  # (T,) for a context token, the row of its pair in `pairs`
    pairs: np.ndarray  # (P, 2) character [start, end) of each context token

    def char_span(self, feature: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the character start of token `start` and end of token `end` of each window (0, 0 outside the
        context)."""
        inside = self.in_context[feature, start] & self.in_context[feature, end]  # (C,)
        if not len(self.pairs):
            return np.zeros(len(feature), dtype=np.int64), np.zeros(len(feature), dtype=np.int64)
        start_pair = self.pair_of_token[self.first_token[feature] + start]  # (C,)
        end_pair = self.pair_of_token[self.first_token[feature] + end]  # (C,)
        return np.where(inside, self.pairs[start_pair, 0], 0), np.where(inside, self.pairs[end_pair, 1], 0)


def select_answers(
    examples: datasets.Dataset,
    features: datasets.Dataset,
    predictions: tuple[np.ndarray, np.ndarray],
    version_2_with_negative: bool = False,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float = 0.0,
) -> QAPredictions:
    """Return the answer, the n-best spans and (SQuAD 2.0) the null odds of every example.

    A span (start, end) of a window scores start_logit + end_logit. Candidates are the `n_best_size` best starts
    and ends among context tokens; a pair is valid when end >= start and end - start + 1 <= `max_answer_length`.
    The null score of an example is the lowest [CLS] score (start[0] + end[0]) over its windows, its best span the
    highest valid span over its windows, and its null odds `null - best`. With `version_2_with_negative` the example
    answers "" when the null odds exceed `null_score_diff_threshold`. An example without any valid span answers ""
    with null odds `NULL_ODDS_WITHOUT_SPAN`. Probabilities are a softmax over each n-best list (null included).

    `predictions` are `(start_logits, end_logits)` of shape (num_features, width); columns past a window's own
    length are ignored, whatever padding value they hold. Equal scores keep window order.
    """
    start_logits, end_logits = _checked_logits(predictions, len(features))  # (F, W) each
    example_ids, contexts = _column(examples, "id"), _column(examples, "context")
    num_examples = len(example_ids)
    feature_example = feature_example_indices(example_ids, _column(features, "example_id"))  # (F,)
    offsets = context_offsets(features, start_logits.shape[1])

    feature, start, end, score = _best_spans_per_feature(
        start_logits, end_logits, offsets.in_context, n_best_size, max_answer_length
    )  # (C,) each: window, start token, end token, score
    order = _best_per_example(feature_example, feature, score, n_best_size)
    feature, start, end, score = feature[order], start[order], end[order], score[order]
    # (E + 1,): the candidates of example e are bounds[e]:bounds[e + 1]
    bounds = np.searchsorted(feature_example[feature], np.arange(num_examples + 1))
    has_span = bounds[1:] > bounds[:-1]  # (E,)
    best = bounds[:-1][has_span]  # the first candidate of every example that has one
    best_score = np.full(num_examples, -np.inf)
    best_score[has_span] = score[best]
    non_null = dict.fromkeys(example_ids, "")
    best_chars = (chars.tolist() for chars in offsets.char_span(feature[best], start[best], end[best]))
    for row, first_char, last_char in zip(np.flatnonzero(has_span).tolist(), *best_chars):
        non_null[example_ids[row]] = contexts[row][first_char:last_char]

    null_by_feature = start_logits[:, 0].astype(np.float64) + end_logits[:, 0]  # (F,)
    null_feature = _argmin_per_group(feature_example, null_by_feature, num_examples)  # (E,)
    null_score = null_by_feature[null_feature]  # (E,)
    null = (null_feature, null_score) if version_2_with_negative else None
    nbest = NBestLists(
        example_ids, contexts, (feature, start, end, score), bounds, null, offsets, start_logits, end_logits
    )
    if not version_2_with_negative:
        return QAPredictions(dict(non_null), nbest, None, non_null)
    null_odds = np.where(has_span, null_score - best_score, NULL_ODDS_WITHOUT_SPAN)  # (E,)
    answers = dict(non_null)
    for row in np.flatnonzero((null_odds > null_score_diff_threshold) | ~has_span).tolist():
        answers[example_ids[row]] = ""
    return QAPredictions(answers, nbest, dict(zip(example_ids, null_odds.tolist())), non_null)


def _checked_logits(predictions, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Return `(start_logits, end_logits)` as float arrays (num_features, width), refusing shapes and NaN that
    would give wrong answers silently."""
    start_logits, end_logits = (np.asarray(logits) for logits in predictions)
    if start_logits.shape != end_logits.shape or start_logits.ndim != 2 or len(start_logits) != num_features:
        raise ValueError(
            f"expected start and end logits of shape ({num_features}, width), got {start_logits.shape} and "
            f"{end_logits.shape}"
        )
    if np.isnan(start_logits).any() or np.isnan(end_logits).any():
        raise ValueError("the logits contain NaN; the model diverged or ran in a precision too low for it")
    if start_logits.dtype == np.float64:
        return start_logits, end_logits
    return start_logits.astype(np.float32, copy=False), end_logits.astype(np.float32, copy=False)


def feature_example_indices(example_ids: list[str], feature_example_ids: list[str]) -> np.ndarray:
    """Return, for every feature, the row of its example; raise when examples and features do not match."""
    row_of = {question_id: row for row, question_id in enumerate(example_ids)}
    unknown = [question_id for question_id in feature_example_ids if question_id not in row_of]
    if unknown:
        raise ValueError(
            f"{len(unknown)} feature(s) belong to examples that are not given (e.g. {_few(unknown)}); "
            "pass the examples the features were built from"
        )
    rows = np.fromiter(map(row_of.__getitem__, feature_example_ids), dtype=np.int64, count=len(feature_example_ids))
    without_features = np.setdiff1d(np.arange(len(example_ids)), rows)
    if len(without_features):
        missing = [example_ids[row] for row in without_features[:_MAX_IDS_SHOWN]]
        raise ValueError(
            f"{len(without_features)} example(s) have no features (e.g. {_few(missing)}); "
            "build the features from exactly these examples"
        )
    return rows


def context_offsets(features: datasets.Dataset, width: int) -> ContextOffsets:
    """Return the context tokens and their character offsets from the features' `offset_mapping`.

    Read straight from Arrow: turning thousands of windows of offsets into Python lists costs more than the whole
    span search.
    """
    mapping = features.with_format("arrow")["offset_mapping"]
    mapping = mapping.chunk(0) if mapping.num_chunks == 1 else mapping.combine_chunks()
    if mapping.null_count:
        raise ValueError("some features have no offset_mapping; build them with prepare_eval_features")
    lengths = mapping.value_lengths().to_numpy(zero_copy_only=False).astype(np.int64)  # (F,)
    if len(lengths) and lengths.max() > width:
        raise ValueError(f"a feature has {lengths.max()} tokens but the logits only {width} columns")
    tokens = mapping.flatten()  # one entry per token: [start, end] in the context, null elsewhere
    token_in_context = tokens.is_valid().to_numpy(zero_copy_only=False)  # (T,)
    pairs = tokens.flatten().to_numpy(zero_copy_only=False) if token_in_context.any() else np.zeros(0)
    if len(pairs) != 2 * token_in_context.sum():
        raise ValueError("every offset_mapping entry must be a [start, end] pair or None")
    in_context = np.zeros((len(lengths), width), dtype=bool)
    in_context[np.arange(width) < lengths[:, None]] = token_in_context  # row-major order is the flat token order
    return ContextOffsets(
        in_context=in_context,
        first_token=np.cumsum(lengths) - lengths,
        pair_of_token=np.cumsum(token_in_context, dtype=np.int32) - 1,
        pairs=pairs.astype(np.int64).reshape(-1, 2),
    )


def _best_spans_per_feature(start_logits, end_logits, in_context, n_best_size, max_answer_length, block_size=512):
    """Return `(feature, start, end, score)` arrays of each window's `n_best_size` best valid spans, grouped by
    window and best first within it.

    Per window: the k best start and end tokens among context tokens, their k×k score matrix, masked for order and
    length, then its n best cells. Windows go in blocks so memory stays at block × k × k.
    """
    num_features, width = start_logits.shape
    k = min(n_best_size, width)
    n = min(n_best_size, k * k)
    parts = []
    for block in range(0, num_features, block_size):
        rows = slice(block, block + block_size)
        # Negated logits, +inf outside the context: the k smallest are the k best context tokens.
        start_cost, end_cost = (
            np.negative(logits[rows], out=np.full_like(logits[rows], np.inf), where=in_context[rows])
            for logits in (start_logits, end_logits)
        )  # (B, W) each
        top_start, top_end = _k_smallest(start_cost, k), _k_smallest(end_cost, k)  # (B, k) each
        costs = (
            np.take_along_axis(start_cost, top_start, axis=1).astype(np.float64)[:, :, None]
            + np.take_along_axis(end_cost, top_end, axis=1).astype(np.float64)[:, None, :]
        )  # (B, k, k): minus the span score, +inf outside the context
        length = top_end.astype(np.int32)[:, None, :] - top_start.astype(np.int32)[:, :, None] + 1  # (B, k, k)
        np.copyto(costs, np.inf, where=(length < 1) | (length > max_answer_length))
        costs = costs.reshape(len(costs), k * k)  # (B, k * k)
        cells = _k_smallest(costs, n)  # (B, n) cells of the k×k matrix
        cells = np.take_along_axis(cells, np.argsort(np.take_along_axis(costs, cells, 1), axis=1, kind="stable"), 1)
        cell_scores = -np.take_along_axis(costs, cells, axis=1)  # (B, n) best first
        valid = np.isfinite(cell_scores)  # (B, n)
        feature = np.broadcast_to(np.arange(block, block + len(cells))[:, None], cells.shape)  # (B, n)
        parts.append(
            (
                feature[valid],
                np.take_along_axis(top_start, cells // k, axis=1)[valid],
                np.take_along_axis(top_end, cells % k, axis=1)[valid],
                cell_scores[valid],
            )
        )
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    return tuple(np.concatenate(arrays) for arrays in zip(*parts))


def _k_smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Return the column indices of the k smallest values of each row, in no particular order."""
    return np.argpartition(values, k - 1, axis=1)[:, :k]


def _best_per_example(feature_example: np.ndarray, feature: np.ndarray, score: np.ndarray, size: int) -> np.ndarray:
    """Return candidate indices grouped by example, best first, at most `size` per example.

    Candidates arrive grouped by window and sorted within it, so only examples spread over several windows need
    their candidates merged by score; ties keep window order.
    """
    example = feature_example[feature]  # (C,)
    order = np.argsort(example, kind="stable")  # (C,)
    shared = np.flatnonzero(np.bincount(feature_example)[example[order]] > 1)  # positions of multi-window examples
    if len(shared):
        merged = order[shared]
        order[shared] = merged[np.lexsort((-score[merged], example[merged]))]
    sorted_example = example[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_example, sorted_example)  # (C,) place within its example
    return order[rank < size]


def _argmin_per_group(groups: np.ndarray, values: np.ndarray, num_groups: int) -> np.ndarray:
    """Return, for each group, the index of its smallest value (the first one on ties)."""
    order = np.lexsort((values, groups))
    return order[np.searchsorted(groups[order], np.arange(num_groups))]


def stack_logits(batches, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Return `(start_logits, end_logits)` as two `(num_features, longest)` float32 arrays padded with -100.

    `batches` is what `Trainer.evaluation_loop` gathered: either one `(start, end)` pair already concatenated or,
    with `eval_do_concat_batches=False`, a list of per-batch pairs of their own lengths. Filling one pre-allocated
    array keeps evaluation memory at one copy of the logits instead of re-concatenating at every step.
    """
    if isinstance(batches, tuple) and isinstance(batches[0], np.ndarray):
        batches = [batches]
    longest = max(start.shape[1] for start, _ in batches)
    start_logits = np.full((num_features, longest), -100.0, dtype=np.float32)
    end_logits = np.full((num_features, longest), -100.0, dtype=np.float32)
    row = 0
    for start, end in batches:
        rows, width = start.shape
        start_logits[row : row + rows, :width] = start
        end_logits[row : row + rows, :width] = end
        row += rows
    if row != num_features:
        raise RuntimeError(f"gathered logits for {row} features, expected {num_features}")
    return start_logits, end_logits


def write_predictions(result: QAPredictions, output_dir: str | Path, prefix: str | None = None) -> dict[str, str]:
    """Write predictions.json, nbest_predictions.json and (SQuAD 2.0) null_odds.json; return their paths by kind.

    With a `prefix` the names become `{prefix}_predictions.json` and so on. The files are what the official
    evaluation script (and `python utils_qa.py score`) reads.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    contents = {"predictions": result.answers, "nbest_predictions": dict(result.nbest)}
    if result.null_odds is not None:
        contents["null_odds"] = result.null_odds
    paths = {}
    for kind, content in contents.items():
        path = output_dir / (f"{prefix}_{kind}.json" if prefix else f"{kind}.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=4, ensure_ascii=False, allow_nan=False)
            handle.write("\n")
        paths[kind] = str(path)
    logger.info("wrote %s", ", ".join(paths.values()))
    return paths


def postprocess_qa_predictions(
    examples: datasets.Dataset,
    features: datasets.Dataset,
    predictions: tuple[np.ndarray, np.ndarray],
    version_2_with_negative: bool = False,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    null_score_diff_threshold: float = 0.0,
    output_dir: str | Path | None = None,
    prefix: str | None = None,
) -> dict[str, str]:
    """Return `{id: answer text}` (see `select_answers`), writing the prediction files when `output_dir` is given."""
    result = select_answers(
        examples, features, predictions, version_2_with_negative, n_best_size, max_answer_length,
        null_score_diff_threshold,
    )
    if output_dir is not None:
        write_predictions(result, output_dir, prefix)
    return result.answers


# ----------------------------------------------------------------------------------------------------------------
# Metric: the official SQuAD 2.0 evaluation rules
# ----------------------------------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Return `text` lower-cased, without ASCII punctuation and the articles a/an/the, whitespace collapsed."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def compute_exact(gold: str, prediction: str) -> int:
    """Return 1 when the normalised texts are equal, else 0."""
    return int(normalize_answer(gold) == normalize_answer(prediction))


def compute_f1(gold: str, prediction: str) -> float:
    """Return the token-overlap F1 of the normalised texts; with an empty side, 1 when both are empty, else 0."""
    gold_tokens = normalize_answer(gold).split()
    predicted_tokens = normalize_answer(prediction).split()
    if not gold_tokens or not predicted_tokens:
        return float(gold_tokens == predicted_tokens)
    overlap = sum((collections.Counter(gold_tokens) & collections.Counter(predicted_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(predicted_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def raw_scores(references: dict[str, list[str]], predictions: dict[str, str]) -> tuple[dict, dict]:
    """Return `(exact, f1)` per id, each the best over the gold answers; no gold answer means gold is ""."""
    exact, f1 = {}, {}
    for question_id, golds in references.items():
        golds = [gold for gold in golds if normalize_answer(gold)] or [""]
        prediction = predictions[question_id]
        exact[question_id] = max(compute_exact(gold, prediction) for gold in golds)
        f1[question_id] = max(compute_f1(gold, prediction) for gold in golds)
    return exact, f1


def apply_no_answer_threshold(scores: dict, null_odds: dict, has_answer: dict, threshold: float) -> dict:
    """Return the scores with every id whose null odds exceed `threshold` scored as a no-answer prediction."""
    return {
        question_id: float(not has_answer[question_id]) if null_odds[question_id] > threshold else score
        for question_id, score in scores.items()
    }


def find_best_thresh(predictions: dict, scores: dict, null_odds: dict, has_answer: dict) -> tuple[float, float]:
    """Return `(best score in %, threshold)`: the null-odds threshold that maximises the total score.

    The official search: start from "no answer everywhere", then admit answers in increasing order of null odds,
    keeping the running best. Answering costs a point on an unanswerable question when the prediction is not empty.
    """
    current = best = sum(1 for question_id in scores if not has_answer[question_id])
    best_threshold = 0.0
    for question_id in sorted(null_odds, key=null_odds.get):
        if question_id not in scores:
            continue
        if has_answer[question_id]:
            current += scores[question_id]
        elif predictions[question_id]:
            current -= 1
        if current > best:
            best, best_threshold = current, null_odds[question_id]
    return 100.0 * best / len(scores), best_threshold


def compute_squad_metrics(
    references: dict[str, list[str]],
    predictions: dict[str, str],
    null_odds: dict[str, float] | None = None,
    version_2_with_negative: bool = True,
    null_odds_threshold: float = 1.0,
    non_null_predictions: dict[str, str] | None = None,
) -> dict[str, float]:
    """Return the official SQuAD scores (0-100) of `predictions` against `references` (id → gold texts).

    SQuAD 2.0 keys: exact, f1, total, HasAns_*/NoAns_* (each only when that side is not empty) and, with
    `null_odds`, best_exact(_thresh) and best_f1(_thresh). SQuAD 1.1 keys: exact_match, f1.

    `null_odds` are the na_prob of the official script: it scores an id as "no answer" when its null odds exceed
    `null_odds_threshold` (its --na-prob-thresh, default 1.0). Our null odds are null score minus best span score and
    `select_answers` answers "" exactly when they exceed `null_score_diff_threshold`, so (1) pass a
    `null_odds_threshold` at least as large as the `null_score_diff_threshold` the predictions were made with to
    score them as written, and (2) `best_f1_thresh` is directly the `--null_score_diff_threshold` that reaches
    `best_f1`. The search admits each answer as predicted: answers already blanked by the threshold stay blank, so
    it only looks at thresholds up to the one used. Give `non_null_predictions` (the best span per id,
    `QAPredictions.non_null_answers`) to search all thresholds. Predictions for ids outside `references` are ignored.
    """
    _require_ids(references, predictions, "predictions")
    exact_raw, f1_raw = raw_scores(references, predictions)
    if not version_2_with_negative:
        return {"exact_match": 100.0 * _mean(exact_raw.values()), "f1": 100.0 * _mean(f1_raw.values())}
    has_answer = {question_id: bool(golds) for question_id, golds in references.items()}
    exact, f1 = exact_raw, f1_raw
    if null_odds is not None:
        _require_ids(references, null_odds, "null_odds")
        exact = apply_no_answer_threshold(exact_raw, null_odds, has_answer, null_odds_threshold)
        f1 = apply_no_answer_threshold(f1_raw, null_odds, has_answer, null_odds_threshold)
    metrics = _summary(exact, f1, list(references))
    for name, wanted in (("HasAns", True), ("NoAns", False)):
        subset = [question_id for question_id, answerable in has_answer.items() if answerable is wanted]
        if subset:
            metrics.update({f"{name}_{key}": value for key, value in _summary(exact, f1, subset).items()})
    if null_odds is not None:
        searched, search_exact, search_f1 = predictions, exact_raw, f1_raw
        if non_null_predictions is not None:
            _require_ids(references, non_null_predictions, "non_null_predictions")
            searched = non_null_predictions
            search_exact, search_f1 = raw_scores(references, non_null_predictions)
        for name, scores in (("exact", search_exact), ("f1", search_f1)):
            metrics[f"best_{name}"], metrics[f"best_{name}_thresh"] = find_best_thresh(
                searched, scores, null_odds, has_answer
            )
    return metrics


def best_null_score_diff_threshold(metrics: dict[str, float]) -> float:
    """Return the `--null_score_diff_threshold` that reached the best F1 (the metrics' `best_f1_thresh`).

    Accepts prefixed metrics (`eval_best_f1_thresh`). Tune it on held-out data, not on the data you report. When
    no threshold beats answering nothing at all, the official search reports 0.0.
    """
    key = next((name for name in metrics if name.endswith("best_f1_thresh")), None)
    if key is None:
        raise ValueError(
            "the metrics have no best_f1_thresh; score SQuAD 2.0 predictions together with their null odds"
        )
    threshold = float(metrics[key])
    logger.info(
        "best F1 %.2f at null odds threshold %.4f: pass --null_score_diff_threshold %r to predict with it",
        metrics[key.replace("best_f1_thresh", "best_f1")], threshold, threshold,
    )
    return threshold


def references_from_dataset(dataset: datasets.Dataset) -> dict[str, list[str]]:
    """Return `{id: gold answer texts}`, an empty list for unanswerable questions."""
    ids, answers = _column(dataset, "id"), _column(dataset, "answers")
    return {question_id: example_answers["text"] for question_id, example_answers in zip(ids, answers)}


def _summary(exact: dict, f1: dict, question_ids: list[str]) -> dict[str, float]:
    """Return exact, f1 (in %) and total over `question_ids`."""
    return {
        "exact": 100.0 * _mean(exact[question_id] for question_id in question_ids),
        "f1": 100.0 * _mean(f1[question_id] for question_id in question_ids),
        "total": len(question_ids),
    }


def _mean(values) -> float:
    """Return the mean of `values`, 0.0 when there are none."""
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _require_ids(references: dict, given: dict, name: str) -> None:
    """Raise a ValueError counting and naming the reference ids that `given` lacks."""
    missing = [question_id for question_id in references if question_id not in given]
    if missing:
        raise ValueError(
            f"{name} lack {len(missing)} of {len(references)} question ids (e.g. {_few(missing)}); "
            'give one for every question ("" means no answer)'
        )


# ----------------------------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------------------------


def _column(dataset: datasets.Dataset, name: str) -> list:
    """Return one column as a Python list, read through Arrow (much faster than iterating rows)."""
    return dataset.with_format("arrow")[name].to_pylist()


def _few(ids: list[str], limit: int = _MAX_IDS_SHOWN) -> str:
    """Return up to `limit` ids quoted, with a count of the rest."""
    shown = ", ".join(repr(question_id) for question_id in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


# ----------------------------------------------------------------------------------------------------------------
# Scoring command
# ----------------------------------------------------------------------------------------------------------------


def score_files(
    data_file: str | Path,
    prediction_file: str | Path,
    null_odds_file: str | Path | None = None,
    null_odds_threshold: float = 1.0,
    squad_version: str = "auto",
) -> dict[str, float]:
    """Return the metrics of a predictions file against a SQuAD data file, like the official evaluation script.

    `squad_version` "auto" scores as SQuAD 2.0 when the data has unanswerable questions or null odds are given.
    """
    dataset = load_squad_file(data_file)
    references = references_from_dataset(dataset)
    predictions = _read_id_map(Path(prediction_file), str, "an answer string")
    _check_prediction_ids(references, predictions, Path(prediction_file), Path(data_file))
    null_odds = None
    if null_odds_file is not None:
        null_odds = _read_id_map(Path(null_odds_file), (int, float), "a number")
        _check_prediction_ids(references, null_odds, Path(null_odds_file), Path(data_file))
    detected = null_odds is not None or has_unanswerable(dataset)
    version_2 = squad_version == "2" or (squad_version == "auto" and detected)
    return compute_squad_metrics(references, predictions, null_odds, version_2, null_odds_threshold)


def _read_id_map(path: Path, value_type, description: str) -> dict:
    """Return a JSON object mapping question ids to values of `value_type`, or raise naming the bad entry."""
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file; check the path")
    try:
        content = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise _json_error(path, error) from None
    if not isinstance(content, dict):
        raise DataFormatError(f"{path}: expected a JSON object {{id: value}}, got a {type(content).__name__}")
    for question_id, value in content.items():
        if not isinstance(value, value_type) or isinstance(value, bool):
            raise DataFormatError(f"{path}: id '{question_id}': value must be {description}, got {value!r:.40}")
    return content


def _check_prediction_ids(references: dict, given: dict, path: Path, data_file: Path) -> None:
    """Raise when `given` misses questions of the data file; warn about ids the data file does not have."""
    missing = [question_id for question_id in references if question_id not in given]
    if missing:
        raise DataFormatError(
            f"{path}: no entry for {len(missing)} of {len(references)} questions of {data_file} "
            f'(e.g. {_few(missing)}); give one for every question ("" means no answer)'
        )
    extra = [question_id for question_id in given if question_id not in references]
    if extra:
        logger.warning(
            "%s: %d ids are not questions of %s and are ignored (e.g. %s)", path, len(extra), data_file, _few(extra)
        )


def _argument_parser() -> argparse.ArgumentParser:
    """Return the command-line parser (one subcommand, `score`)."""
    parser = argparse.ArgumentParser(prog="utils_qa.py", description="SQuAD utilities.")
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser(
        "score", help="score a predictions file against a SQuAD data file; prints the metrics as JSON",
        description="Score predictions like the official SQuAD evaluation script (v1.1 or v2.0 by content).",
    )
    score.add_argument("data_file", help="SQuAD data: official nested JSON, or flat .json/.jsonl/.csv/.parquet rows")
    score.add_argument("prediction_file", help='JSON object {id: answer text}, "" for no answer (predictions.json)')
    score.add_argument("--null-odds", dest="null_odds_file", help="JSON object {id: null odds} (null_odds.json)")
    score.add_argument(
        "--null-odds-threshold", type=float, default=1.0,
        help="score an id as no answer when its null odds exceed this (the official --na-prob-thresh)",
    )
    score.add_argument(
        "--squad-version", choices=("auto", "1", "2"), default="auto",
        help="metric keys to report; auto: 2 when the data has unanswerable questions or null odds are given",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (1 with a one-line error for bad input)."""
    args = _argument_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        metrics = score_files(
            args.data_file, args.prediction_file, args.null_odds_file, args.null_odds_threshold, args.squad_version
        )
    except DataFormatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
